package cli

import (
	"context"
	"fmt"
	"io"
	"strings"
	"testing"
	"unicode/utf8"

	"github.com/felix-ops/felix/api/wire"
	"github.com/felix-ops/felix/model"
)

func init() {
	fakeJobs["jmany"] = manyJob()
	fakeJobs["jpushmany"] = pushManyJob()
}

// pushManyJob is a push to app[01-20]: most wrote the file, two had it
// already, one could not write it, one was not reached.
func pushManyJob() wire.Job {
	job := wire.Job{JobID: "jpushmany", CmdType: "push", CmdLine: "push /etc/app.conf", State: "done", Summary: map[string]int{}}
	for i := 1; i <= 20; i++ {
		r := wire.HostResult{Host: fmt.Sprintf("app%02d", i), State: model.StateOK, Transport: "agent",
			Files: &model.FileReport{Changed: 1, Size: 2048}}
		switch i {
		case 4, 9:
			r.Files = &model.FileReport{Unchanged: 1, Size: 2048}
		case 12:
			r.State, r.Error = model.StateFailed, "put /etc/app.conf: permission denied"
			r.Files = &model.FileReport{Size: 2048}
		case 17:
			r.State, r.Error, r.Files, r.ExitCode = model.StateUnreachable, "dial: connection refused", nil, -1
		}
		job.Results = append(job.Results, r)
		job.Summary[string(r.State)]++
		job.Total++
	}
	return job
}

// manyJob is a job of 43 hosts, db[1-3] and web[01-40]: most print the
// same line, a few differ — a long multi-line output with stderr, two
// unreachable, a timeout killed by a signal, and ANSI escapes and bytes
// that are not UTF-8 in stdout and stderr.
func manyJob() wire.Job {
	long := ""
	for i := 1; i <= 25; i++ {
		long += fmt.Sprintf("line %d\n", i)
	}
	odd := map[string]wire.HostResult{
		"db2":   {State: model.StateOK, Stdout: "\x1b]0;owned\a\x1b[2Jcleared\n", Stderr: "bad \xff\xfe byte\r\n"},
		"web07": {State: model.StateFailed, ExitCode: 3, Stdout: long, Stderr: "warn: one\nwarn: two\n"},
		"web13": {State: model.StateUnreachable, ExitCode: -1, Error: "dial tcp 10.0.0.13:22: connection refused"},
		"web14": {State: model.StateUnreachable, ExitCode: -1, Error: "dial tcp 10.0.0.13:22: connection refused"},
		"web20": {State: model.StateTimeout, ExitCode: -1, Signal: "KILL"},
		"web33": {State: model.StateOK, Truncated: true, Stdout: "hello\n"},
	}
	job := wire.Job{JobID: "jmany", State: "done", CmdLine: "hello", Summary: map[string]int{}}
	var hosts []string
	for i := 1; i <= 3; i++ {
		hosts = append(hosts, fmt.Sprintf("db%d", i))
	}
	for i := 1; i <= 40; i++ {
		hosts = append(hosts, fmt.Sprintf("web%02d", i))
	}
	for _, h := range hosts {
		r, ok := odd[h]
		if !ok {
			r = wire.HostResult{State: model.StateOK, Stdout: "hello\n"}
		}
		r.Host, r.Transport = h, "agent"
		job.Results = append(job.Results, r)
		job.Summary[string(r.State)]++
		job.Total++
	}
	return job
}

// TestFoldGolden holds the folded tables to golden files (UPDATE=1
// rewrites them): 43 hosts in pages of two, mixed states, a long
// multi-line output cut to --lines, stderr apart, escapes shown, not sent.
// (Bytes that are not UTF-8 reach the CLI as U+FFFD: the API's JSON
// replaces them; TestFold renders them raw.)
func TestFoldGolden(t *testing.T) {
	f := fakeMaster(t)
	for _, tt := range []struct {
		name string
		args []string
	}{
		{"fold-many", []string{"job", "jmany"}},
		{"fold-many-lines-3", []string{"job", "jmany", "--lines", "3"}},
		{"fold-many-lines-all", []string{"job", "jmany", "--lines", "0"}},
		{"fold-many-no-fold", []string{"job", "jmany", "--no-fold"}},
		{"fold-many-diff", []string{"job", "jmany", "--diff"}},
		{"fold-many-diff-lines-4", []string{"job", "jmany", "--diff", "--lines", "4"}},
		{"fold-push", []string{"job", "jpushmany"}},
		{"fold-push-no-fold", []string{"job", "jpushmany", "--no-fold"}},
	} {
		t.Run(tt.name, func(t *testing.T) {
			code, stdout, stderr := f.run(t, context.Background(), tt.args...)
			if code != 0 || stderr != "" { // felix job displays: 0 though hosts failed
				t.Errorf("felix %s: exit %d, stderr %q; want 0 and nothing", strings.Join(tt.args, " "), code, stderr)
			}
			if strings.ContainsAny(stdout, "\x1b\a\r") || !utf8.ValidString(stdout) {
				t.Errorf("escapes or bytes that are not UTF-8 reach the terminal raw:\n%q", stdout)
			}
			golden(t, tt.name, stdout)
		})
	}
}

// TestFold checks the groups' heads and cuts on their own.
func TestFold(t *testing.T) {
	job := manyJob()
	for _, tt := range []struct {
		name  string
		lines int
		want  []string // each once in the output
		not   []string
	}{
		{"majority first", 10, []string{
			"db[1,3],web[01-06,08-12,15-19,21-32,34-40] (37 hosts): ok, exit 0\n  | hello\n",
			"web[13-14] (2 hosts): unreachable\n  error: dial tcp",
			"web20 (1 host): timeout, signal KILL\n  (no output)\n",
			"web33 (1 host): ok, exit 0\n  | hello\n  (output truncated)\n",
			"  | line 10\n  … 15 more lines (all: felix job output jmany web07)\n  ! warn: one\n  ! warn: two\n",
			`  | \x1b]0;owned\x07\x1b[2Jcleared` + "\n" + `  ! bad \xff\xfe byte\r` + "\n",
		}, []string{"line 11"}},
		{"all lines", 0, []string{"  | line 25\n  ! warn: one\n"}, []string{"more line"}},
		{"one line", 1, []string{"  | line 1\n  … 24 more lines (all: felix job output jmany web07)\n  ! warn: one\n  … 1 more line (all: felix job output jmany web07 --stderr)\n"}, []string{"line 2"}},
	} {
		t.Run(tt.name, func(t *testing.T) {
			var f folder
			for _, r := range job.Results {
				f.add(r)
			}
			var b strings.Builder
			if err := f.render(&b, job.JobID, tt.lines); err != nil {
				t.Fatal(err)
			}
			out := b.String()
			for _, s := range tt.want {
				if n := strings.Count(out, s); n != 1 {
					t.Errorf("%q comes %d times; want once in:\n%s", s, n, out)
				}
			}
			for _, s := range tt.not {
				if strings.Contains(out, s) {
					t.Errorf("%q is in:\n%s", s, out)
				}
			}
		})
	}
}

// TestFoldDiff: --diff prints the largest group once and each other as
// a unified diff of its marked lines against it.
func TestFoldDiff(t *testing.T) {
	job := wire.Job{JobID: "j9", Results: []wire.HostResult{
		{Host: "n1", State: model.StateOK, Stdout: "a\nb\nc\n"},
		{Host: "n2", State: model.StateOK, Stdout: "a\nb\nc\n"},
		{Host: "n3", State: model.StateOK, Stdout: "a\nB\nc\n", Stderr: "w\x1b[31m\n"},
		{Host: "n4", State: model.StateFailed, ExitCode: 1, Stdout: "a\nb\nc\n"},
	}}
	var f folder
	for _, r := range job.Results {
		f.add(r)
	}
	var b strings.Builder
	if err := f.renderDiff(&b, job.JobID, 0); err != nil {
		t.Fatal(err)
	}
	want := "n[1-2] (2 hosts): ok, exit 0\n  | a\n  | b\n  | c\n" +
		"n3 (1 host): ok, exit 0\n  --- n[1-2]\n  +++ n3\n  @@ -1,3 +1,4 @@\n     | a\n  -  | b\n  +  | B\n     | c\n  +  ! w\\x1b[31m\n" +
		"n4 (1 host): failed, exit 1\n  (the same output)\n"
	if got := b.String(); got != want {
		t.Errorf("renderDiff =\n%s\nwant\n%s", got, want)
	}
}

// TestViewFlags: flags that do not go together are refused before
// anything is sent.
func TestViewFlags(t *testing.T) {
	f := fakeMaster(t)
	for _, tt := range []struct {
		args []string
		want string
	}{
		{[]string{"job", "j1", "--diff", "--no-fold"}, "not with --no-fold"},
		{[]string{"exec", "-t", "*", "--lines", "-1", "--", "true"}, "--lines -1"},
		{[]string{"cp", "/etc/hostname", "-t", "*", "--diff", "--no-fold", "/tmp/x"}, "not with --no-fold"},
	} {
		t.Run(strings.Join(tt.args, " "), func(t *testing.T) {
			code, stdout, stderr := f.run(t, context.Background(), tt.args...)
			if code != 1 || stdout != "" || !strings.Contains(stderr, tt.want) {
				t.Errorf("exit %d, stdout %q, stderr %q; want 1 and %q", code, stdout, stderr, tt.want)
			}
			for _, r := range f.sent() {
				if strings.HasPrefix(r, "POST") {
					t.Errorf("sent %s", r)
				}
			}
		})
	}
}

// BenchmarkFold renders the folded results of a 10,000-host job: 3
// distinct outputs over most hosts and 50 outliers of their own.
func BenchmarkFold(b *testing.B) {
	outputs := []string{"Linux 6.1.0 x86_64\nup 12 days\n", "Linux 6.6.0 x86_64\nup 3 days\n", "Linux 5.15.0 aarch64\nup 40 days\n"}
	results := make([]wire.HostResult, 0, 10000)
	for i := 0; i < 10000; i++ {
		r := wire.HostResult{Host: fmt.Sprintf("node%05d", i), State: model.StateOK, Stdout: outputs[i%3], Transport: "agent"}
		if i%200 == 7 {
			r.State, r.ExitCode, r.Stderr = model.StateFailed, 1, fmt.Sprintf("disk %d full\n", i)
		}
		results = append(results, r)
	}
	for _, diff := range []bool{false, true} {
		b.Run(map[bool]string{false: "fold", true: "diff"}[diff], func(b *testing.B) {
			b.ReportAllocs()
			for b.Loop() {
				var f folder
				for _, r := range results {
					f.add(r)
				}
				render := f.render
				if diff {
					render = f.renderDiff
				}
				if err := render(io.Discard, "j1", 10); err != nil {
					b.Fatal(err)
				}
			}
		})
	}
}
