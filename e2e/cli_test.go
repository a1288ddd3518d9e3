package e2e

import (
	"encoding/json"
	"os"
	"os/exec"
	"path/filepath"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/felix-ops/felix/api/wire"
	"github.com/felix-ops/felix/internal/testenv"
)

// TestCLICompletionAndExitCodes completes minion and job ids from a live
// master, through felix __complete and through bash running the generated
// completion function, and checks the exit codes: display commands 0 even
// for a job with a failed host, exec 1.
func TestCLICompletionAndExitCodes(t *testing.T) {
	if _, err := exec.LookPath("bash"); err != nil {
		testenv.Missing(t, "bash (scripts/deps.sh)")
	}
	c := startMaster(t)
	join, errOut, code := c.felix("token", "join", "--ttl", "10m")
	if code != 0 {
		t.Fatalf("felix token join: exit %d: %s", code, errOut)
	}
	join = strings.TrimSpace(join)
	c.startMinion("web1", "127.0.0.2", join)
	c.startMinion("web2", "127.0.0.3", join)
	waitFor(t, "two pending minions", 60*time.Second, func() bool { return len(c.minions()) == 2 })
	if out, errOut, code := c.felix("keys", "accept", "web1"); code != 0 {
		t.Fatalf("felix keys accept web1: exit %d\n%s%s", code, out, errOut)
	}

	// felix __complete: the protocol the shells' scripts speak.
	complete := func(args ...string) []string {
		t.Helper()
		out, errOut, code := c.felix(append([]string{"__complete"}, args...)...)
		if code != 0 {
			t.Fatalf("felix __complete %q: exit %d\n%s", args, code, errOut)
		}
		var ids []string
		for _, line := range strings.Split(strings.TrimSpace(out), "\n") {
			if !strings.HasPrefix(line, ":") {
				id, _, _ := strings.Cut(line, "\t")
				ids = append(ids, id)
			}
		}
		return ids
	}
	if got := complete("minion", ""); !slices.Equal(got, []string{"web1", "web2"}) {
		t.Errorf("felix __complete minion '' = %q; want both minions", got)
	}
	if got := complete("keys", "accept", ""); !slices.Equal(got, []string{"web2"}) {
		t.Errorf("felix __complete keys accept '' = %q; want the pending web2", got)
	}
	if got := complete("exec", "-t", "w"); !slices.Equal(got, []string{"web1"}) {
		t.Errorf("felix __complete exec -t w = %q; want the accepted web1", got)
	}

	// Through bash, with the bash-completion package the generated script
	// needs (as in a user's shell): the function fills COMPREPLY from the
	// master.
	bashCompletion := "/usr/share/bash-completion/bash_completion"
	if p := os.Getenv("FELIX_TEST_BASH_COMPLETION"); p != "" {
		bashCompletion = p // an unpacked bash-completion .deb, where it is not installed
	}
	bin := filepath.Join(binDir, "felix")
	script, _, code := c.felix("completion", "bash")
	if code != 0 {
		t.Fatalf("felix completion bash: exit %d", code)
	}
	scriptPath := filepath.Join(t.TempDir(), "felix.bash")
	if err := os.WriteFile(scriptPath, []byte(script), 0o600); err != nil {
		t.Fatal(err)
	}
	bashComplete := func(t *testing.T, words ...string) []string {
		t.Helper()
		if _, err := os.Stat(bashCompletion); err != nil {
			testenv.Missing(t, "bash-completion (scripts/deps.sh installs it): %v", err)
		}
		line := strings.Join(words, " ")
		cmd := exec.Command("bash", "--norc", "--noprofile", "-c", `source "$1"; source "$2"; shift 2
COMP_WORDS=("$@"); COMP_CWORD=$(($# - 1)); COMP_LINE="$*"; COMP_POINT=${#COMP_LINE}
__start_felix; printf '%s\n' "${COMPREPLY[@]}"`, "bash", bashCompletion, scriptPath)
		cmd.Args = append(cmd.Args, append([]string{bin}, words...)...)
		cmd.Env = append(os.Environ(), c.env...)
		// stdout only: outside a shell's completion, compopt complains on stderr
		var stderr strings.Builder
		cmd.Stderr = &stderr
		out, err := cmd.Output()
		if err != nil {
			t.Fatalf("bash completing %q: %v\n%s%s", line, err, out, stderr.String())
		}
		return strings.Fields(string(out))
	}
	t.Run("bash", func(t *testing.T) {
		if got := bashComplete(t, "minion", "web"); !slices.Equal(got, []string{"web1", "web2"}) {
			t.Errorf("bash completing felix minion web = %q; want web1 web2", got)
		}
		if got := bashComplete(t, "mini"); !slices.Equal(got, []string{"minion", "minions"}) {
			t.Errorf("bash completing felix mini = %q; want minion minions", got)
		}
		if got := bashComplete(t, "exec", "-t", "w"); !slices.Equal(got, []string{"web1"}) {
			t.Errorf("bash completing felix exec -t w = %q; want web1", got)
		}
	})

	// exec with a failed host exits 1; showing that job exits 0.
	out, errOut, code := c.felix("exec", "-t", "web1", "-o", "json", "--", "exit 3")
	var job wire.Job
	if err := json.Unmarshal([]byte(out), &job); err != nil || code != 1 {
		t.Fatalf("felix exec (a failing command): exit %d, %v\n%s%s; want 1 and the job", code, err, out, errOut)
	}
	if got := complete("job", ""); !slices.Contains(got, job.JobID) {
		t.Errorf("felix __complete job '' = %q; want the job %s", got, job.JobID)
	}
	t.Run("bash job id", func(t *testing.T) {
		prefix := job.JobID[:len(job.JobID)-1]
		if got := bashComplete(t, "job", prefix); !slices.Equal(got, []string{job.JobID}) {
			t.Errorf("bash completing felix job %s = %q; want the job", prefix, got)
		}
	})
	for _, args := range [][]string{{"job", job.JobID}, {"job", job.JobID, "-o", "json"}, {"jobs"}, {"minions"}, {"minion", "web1"}, {"keys"}} {
		out, errOut, code := c.felix(args...)
		if code != 0 || errOut != "" {
			t.Errorf("felix %s: exit %d, stderr %q; want 0 (a display command)", strings.Join(args, " "), code, errOut)
		}
		if args[0] == "job" && len(args) == 2 && !strings.Contains(out, "failed") {
			t.Errorf("felix job %s shows no failed host:\n%s", job.JobID, out)
		}
	}
	if _, errOut, code := c.felix("exce", "-t", "web1", "--", "true"); code != 2 || !strings.Contains(errOut, `did you mean "exec"?`) {
		t.Errorf("felix exce: exit %d, stderr %q; want 2 and did you mean \"exec\"?", code, errOut)
	}
}
