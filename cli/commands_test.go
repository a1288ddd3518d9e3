package cli

import (
	"bytes"
	"context"
	"net"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"strings"
	"testing"
	"time"

	"github.com/spf13/cobra"

	"github.com/felix-ops/felix/api/wire"
	"github.com/felix-ops/felix/internal/testenv"
)

// runMain runs Main with args and returns its exit status and outputs.
func runMain(t *testing.T, args ...string) (int, string, string) {
	t.Helper()
	var out, errb bytes.Buffer
	code := Main(context.Background(), args, &out, &errb)
	return code, out.String(), errb.String()
}

// allCommands are the paths of every command a user can name, "exec",
// "hosts add"..., as felix help lists them.
func allCommands(t *testing.T) [][]string {
	t.Helper()
	root := build(context.Background(), modeRun, &bytes.Buffer{}, &bytes.Buffer{})
	var paths [][]string
	var walk func(c *cobra.Command, path []string)
	walk = func(c *cobra.Command, path []string) {
		for _, sub := range c.Commands() {
			if !sub.IsAvailableCommand() {
				continue
			}
			p := append(append([]string{}, path...), sub.Name())
			paths = append(paths, p)
			walk(sub, p)
		}
	}
	walk(root, nil)
	return paths
}

func TestHelpPerCommand(t *testing.T) {
	paths := allCommands(t)
	if len(paths) < 40 {
		t.Fatalf("%d commands; want every command and subcommand (40 or more)", len(paths))
	}
	for _, path := range paths {
		name := strings.Join(path, " ")
		t.Run(name, func(t *testing.T) {
			code, help, stderr := runMain(t, append([]string{"help"}, path...)...)
			if code != 0 || stderr != "" {
				t.Fatalf("felix help %s: exit %d, stderr %q; want 0 and nothing", name, code, stderr)
			}
			for _, flag := range []string{"--help", "-h"} {
				code, out, stderr := runMain(t, append(append([]string{}, path...), flag)...)
				if code != 0 || stderr != "" || out != help {
					t.Errorf("felix %s %s: exit %d, stderr %q, stdout:\n%s\nwant 0 and the same as felix help %s:\n%s", name, flag, code, stderr, out, name, help)
				}
			}
			if !strings.Contains(help, "Usage:\n  felix "+name) {
				t.Errorf("felix help %s has no synopsis:\n%s", name, help)
			}
			if path[0] == "completion" {
				return // cobra's own
			}
			if !strings.Contains(help, "\nFlags:\n") {
				t.Errorf("felix help %s lists no flags:\n%s", name, help)
			}
			if !strings.Contains(help, "\nExamples:\n  felix "+name) && name != "version" {
				t.Errorf("felix help %s has no examples:\n%s", name, help)
			}
			if strings.Count(help, "--config string") > 1 {
				t.Errorf("felix help %s shows --config more than once:\n%s", name, help)
			}
		})
	}
	// The general help and --config's shown default are the same file.
	_, general, _ := runMain(t, "help")
	_, exec, _ := runMain(t, "exec", "--help")
	m := regexp.MustCompile(`--config string +config file \(default "([^"]+)"\)`).FindStringSubmatch(exec)
	if m == nil || !strings.Contains(general, "the config file "+m[1]+")") {
		t.Errorf("felix help names the config file otherwise than felix exec --help (%q):\n%s", m, general)
	}
	for _, args := range [][]string{{"--help"}, {"-h"}} {
		if code, out, _ := runMain(t, args...); code != 0 || out != general {
			t.Errorf("felix %s: exit %d; want 0 and the general help", args[0], code)
		}
	}
	if code, out, stderr := runMain(t); code != 2 || out != "" || stderr != general {
		t.Errorf("felix without a command: exit %d, stdout %q; want 2 and the general help on stderr", code, out)
	}
}

// TestDocumentedFlagsExist checks that every --flag the general help shows
// on a command's line is a flag of that command.
func TestDocumentedFlagsExist(t *testing.T) {
	root := build(context.Background(), modeMan, &bytes.Buffer{}, &bytes.Buffer{})
	word := regexp.MustCompile(`^[a-z]+$`)
	flag := regexp.MustCompile(`--[a-z][a-z-]*`)
	var cmd *cobra.Command
	checked := 0
	for _, line := range strings.Split(usage, "\n") {
		if rest, ok := strings.CutPrefix(line, "  felix "); ok {
			var path []string
			for _, w := range strings.Fields(rest) {
				if !word.MatchString(w) {
					break
				}
				path = append(path, w)
			}
			c, _, err := root.Find(path)
			if err != nil || c == root {
				t.Errorf("general help line %q names no command", line)
				cmd = nil
				continue
			}
			cmd = c
			cmd.InitDefaultHelpFlag() // every command's, as when it runs
		} else if !strings.HasPrefix(line, "        ") {
			cmd = nil // a command's flags go on its line and the ones indented under it
		}
		if cmd == nil {
			continue
		}
		for _, f := range flag.FindAllString(line, -1) {
			checked++
			if cmd.Flags().Lookup(f[2:]) == nil && !siblingHas(cmd, line, f[2:]) {
				t.Errorf("felix help shows %s for felix %s, which has no such flag (line %q)", f, cmd.Name(), line)
			}
		}
	}
	if checked < 40 {
		t.Errorf("checked %d flags; want the general help's 40 or more", checked)
	}
}

// siblingHas says whether a subcommand beside cmd that line names (felix
// config put ... | get NAME [--rev N]) has the flag name.
func siblingHas(cmd *cobra.Command, line, name string) bool {
	if !cmd.HasParent() {
		return false
	}
	for _, s := range cmd.Parent().Commands() {
		if strings.Contains(line, " "+s.Name()+" ") && s.Flags().Lookup(name) != nil {
			return true
		}
	}
	return false
}

func TestDidYouMean(t *testing.T) {
	for _, tt := range []struct {
		args []string
		want string
	}{
		{[]string{"exce", "-t", "*", "--", "true"}, `felix: unknown command "exce" for "felix"; did you mean "exec"?`},
		{[]string{"minoins"}, `did you mean "minions"?`},
		{[]string{"hosts", "ad", "10.0.0.1"}, `unknown command "ad" for "felix hosts"; did you mean "add"`},
		{[]string{"keys", "--master", "https://127.0.0.1:1", "acept", "web01"}, `unknown command "acept" for "felix keys"; did you mean "accept"?`},
		{[]string{"token", "revkoe", "ci"}, `did you mean "revoke"?`},
		{[]string{"help", "exce"}, `unknown command "exce" for "felix"; did you mean "exec"?`},
		{[]string{"help", "hosts", "shwo"}, `unknown command "shwo" for "felix hosts"; did you mean "show"?`},
		{[]string{"frobnicate"}, `unknown command "frobnicate" for "felix"; see felix --help`},
		{[]string{"--master", "https://127.0.0.1:1"}, `felix: no command before --master: felix COMMAND [flags]; see felix --help`},
		{[]string{"pkg", "purge", "-t", "web1", "nginx"}, `unknown command "purge" for "felix pkg"; want info, install, list, remove or upgrade`},
	} {
		t.Run(strings.Join(tt.args, " "), func(t *testing.T) {
			code, out, stderr := runMain(t, tt.args...)
			if code != 2 || out != "" || !strings.Contains(stderr, tt.want) || strings.Count(stderr, "\n") != 1 {
				t.Errorf("exit %d, stdout %q, stderr %q; want 2 and one line with %q", code, out, stderr, tt.want)
			}
		})
	}
}

// complete asks Main to complete args as the shells' scripts do.
func complete(t *testing.T, args ...string) []string {
	t.Helper()
	code, out, _ := runMain(t, append([]string{cobra.ShellCompRequestCmd}, args...)...)
	if code != 0 {
		t.Fatalf("felix __complete %q: exit %d", args, code)
	}
	lines := strings.Split(strings.TrimSpace(out), "\n")
	if len(lines) == 0 || !strings.HasPrefix(lines[len(lines)-1], ":") {
		t.Fatalf("felix __complete %q: %q has no directive line", args, out)
	}
	return lines[:len(lines)-1]
}

func TestCompletion(t *testing.T) {
	f := fakeMaster(t)
	conn := f.conn(t)
	with := func(args ...string) []string { // conn after the first word
		return append(append(append([]string{}, args[0]), conn...), args[1:]...)
	}
	for _, tt := range []struct {
		name string
		args []string
		want []string
	}{
		{"commands", []string{"ex"}, []string{"exec\trun a command line on the targets"}},
		{"subcommands", []string{"hosts", "s"}, []string{"show\tshow one agentless host with its groups and facts"}},
		{"flags", []string{"exec", "--no-"}, []string{"--no-fold\tone row per host instead of hosts with the same result folded into one"}},
		{"minion ids", with("minion", ""), []string{"web01\tminion, accepted", "web02\tminion, pending"}},
		{"minion id prefix", with("minion", "web0"), []string{"web01\tminion, accepted", "web02\tminion, pending"}},
		{"one minion id only", with("minion", "web01", ""), nil},
		{"keys accept: not accepted", with("keys", "accept", ""), []string{"web02\tminion, pending"}},
		{"minions label id", with("minions", "label", "w"), []string{"web01\tminion, accepted", "web02\tminion, pending"}},
		{"job ids", with("job", "j"), []string{"j1\tdone: echo hi", "jfail\tdone: for i in 1 2 3; do echo a long command l…"}},
		{"job output: a job, then its hosts", with("job", "output", "jfail", ""), []string{"web01\tok", "web02\tunreachable"}},
		{"job cancel ids", with("job", "cancel", "jf"), []string{"jfail\tdone: for i in 1 2 3; do echo a long command l…"}},
		{"targets", with("exec", "-t", ""), []string{"web01\tminion, accepted"}},
		{"targets after a comma", with("exec", "-t", "db1,w"), []string{"db1,web01\tminion, accepted"}},
		{"targets --target=", with("cp", "--target", "we"), []string{"web01\tminion, accepted"}},
		{"output", with("jobs", "-o", ""), []string{"table", "wide", "json", "yaml", "jsonl"}},
	} {
		t.Run(tt.name, func(t *testing.T) {
			got := complete(t, tt.args...)
			if strings.Join(got, "\n") != strings.Join(tt.want, "\n") {
				t.Errorf("felix __complete %q =\n%s\nwant\n%s", tt.args, strings.Join(got, "\n"), strings.Join(tt.want, "\n"))
			}
		})
	}
	// Local files where a command takes one; not where it takes ids.
	for args, want := range map[string]string{"cp|": ":0", "apply|": ":0", "config|put|web|": ":0", "minion|": ":4", "exec|-t|web01|--|": ":4"} {
		_, out, _ := runMain(t, append([]string{cobra.ShellCompRequestCmd}, strings.Split(args, "|")...)...)
		if got := strings.TrimSpace(out); !strings.HasSuffix(got, "\n"+want) && got != want {
			t.Errorf("felix __complete %s: %q; want the directive %s (0: files, 4: none)", strings.ReplaceAll(args, "|", " "), got, want)
		}
	}
	// An unreachable master: nothing, quietly (the shell shows no error).
	dead := []string{"minion", "--master", "https://127.0.0.1:1", "--token", "x", ""}
	if got := complete(t, dead...); len(got) != 0 {
		t.Errorf("completion with an unreachable master = %q; want nothing", got)
	}
	// A master that accepts the connection and never answers: the
	// completion gives up (completeTimeout) and says nothing.
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	held := make(chan net.Conn, 16)
	t.Cleanup(func() {
		ln.Close()
		for len(held) > 0 {
			(<-held).Close()
		}
	})
	go func() {
		for {
			c, err := ln.Accept()
			if err != nil {
				return
			}
			select {
			case held <- c: // held open, unanswered, until the test ends
			default:
				c.Close()
			}
		}
	}()
	silent := []string{"minion", "--master", "https://" + ln.Addr().String(), "--token", "x", "--config", filepath.Join(t.TempDir(), "none.toml"), ""}
	if got := complete(t, silent...); len(got) != 0 {
		t.Errorf("completion with a master that never answers = %q; want nothing", got)
	}
	if got := complete(t, "minion", "--config", filepath.Join(t.TempDir(), "none.toml"), ""); len(got) != 0 {
		t.Errorf("completion with no master configured = %q; want nothing", got)
	}
}

func TestCompletionScripts(t *testing.T) {
	for _, shell := range []string{"bash", "zsh", "fish"} {
		t.Run(shell, func(t *testing.T) {
			code, script, stderr := runMain(t, "completion", shell)
			if code != 0 || stderr != "" || !strings.Contains(script, "__complete") {
				t.Fatalf("felix completion %s: exit %d, stderr %q; want a script calling felix __complete", shell, code, stderr)
			}
			if _, err := exec.LookPath(shell); err != nil {
				testenv.Missing(t, "%s (scripts/deps.sh installs it)", shell)
			}
			path := filepath.Join(t.TempDir(), "felix."+shell)
			if err := os.WriteFile(path, []byte(script), 0o600); err != nil {
				t.Fatal(err)
			}
			var cmd *exec.Cmd
			switch shell {
			case "bash": // loaded, it registers its function for felix
				cmd = exec.Command("bash", "--norc", "--noprofile", "-c", "source "+path+" && complete -p felix")
			default: // zsh -n and fish -n: parsed, not run
				cmd = exec.Command(shell, "-n", path)
			}
			out, err := cmd.CombinedOutput()
			if err != nil {
				t.Fatalf("%s: %v\n%s", cmd, err, out)
			}
			if shell == "bash" && !strings.Contains(string(out), "__start_felix felix") {
				t.Errorf("complete -p felix = %q; want the generated function registered", out)
			}
		})
	}
}

func TestManPages(t *testing.T) {
	dir := filepath.Join(t.TempDir(), "man")
	if code, out, stderr := runMain(t, "__man", dir); code != 0 || out != "" || stderr != "" {
		t.Fatalf("felix __man: exit %d, stdout %q, stderr %q", code, out, stderr)
	}
	for _, path := range allCommands(t) {
		name := "felix-" + strings.Join(path, "-") + ".1"
		b, err := os.ReadFile(filepath.Join(dir, name))
		if err != nil {
			t.Errorf("no man page for felix %s: %v", strings.Join(path, " "), err)
			continue
		}
		page := string(b)
		if !strings.HasPrefix(page, `.nh`) && !strings.Contains(page, ".TH \"FELIX\" \"1\"") {
			t.Errorf("%s: no .TH header:\n%.300s", name, page)
		}
		if path[0] == "exec" && len(path) == 1 {
			for _, want := range []string{`\fB--config\fP="~/.config/felix/felix.toml`, `\fB--target\fP`, `\fB--no-fold\fP`, ".SH EXAMPLE", "felix exec -t 'web*' -- uptime"} {
				if !strings.Contains(page, want) {
					t.Errorf("%s lacks %q:\n%s", name, want, page)
				}
			}
		}
	}
	if _, err := os.Stat(filepath.Join(dir, "felix.1")); err != nil {
		t.Errorf("no felix.1: %v", err)
	}
	groff, err := exec.LookPath("groff")
	if err != nil {
		testenv.Missing(t, "groff (scripts/deps.sh installs groff-base)")
	}
	out, err := exec.Command(groff, "-k", "-man", "-Tutf8", "-ww", "-z", filepath.Join(dir, "felix-exec.1")).CombinedOutput()
	if err != nil || len(out) > 0 {
		t.Errorf("groff -man -ww felix-exec.1: %v\n%s", err, out)
	}
}

func TestNotificationsAfterRun(t *testing.T) {
	f := fakeMaster(t)
	for _, tt := range []struct {
		name string
		args []string
		want string // the notification line, "" for none
	}{
		{"delivered: not shown", []string{"exec", "-t", "*", "--", "echo", "hi"}, ""},
		{"delivered with -v", []string{"exec", "-t", "*", "-v", "--", "echo", "hi"}, "callback: delivered (2 attempts)"},
		{"delivered with --verbose", []string{"exec", "-t", "*", "--verbose", "--", "echo", "hi"}, "callback: delivered (2 attempts)"},
		{"dead: shown", []string{"exec", "-t", "*", "--", "fail"}, "callback: dead: HTTP 500 from receiver (12 attempts)"},
		{"felix job shows every one", []string{"job", "j1"}, "callback: delivered (2 attempts)"},
	} {
		t.Run(tt.name, func(t *testing.T) {
			_, stdout, _ := f.run(t, context.Background(), tt.args...)
			got := ""
			for _, line := range strings.Split(stdout, "\n") {
				if strings.HasPrefix(line, "callback: ") {
					got = line
				}
			}
			if got != tt.want {
				t.Errorf("felix %s: notification line %q; want %q\n%s", strings.Join(tt.args, " "), got, tt.want, stdout)
			}
		})
	}
	next := time.Now().Add(100 * time.Second)
	for _, tt := range []struct {
		d    wire.Delivery
		want bool
	}{
		{wire.Delivery{Kind: "slack", State: "delivered", Attempts: 1}, false},
		{wire.Delivery{Kind: "slack", State: "pending", Attempts: 0, NextAt: &next}, false},
		{wire.Delivery{Kind: "slack", State: "pending", Attempts: 1, LastError: "HTTP 503", NextAt: &next}, true},
		{wire.Delivery{Kind: "callback", State: "dead", Attempts: 12, LastError: "HTTP 500"}, true},
	} {
		if got := deliveryFailed(tt.d); got != tt.want {
			t.Errorf("deliveryFailed(%+v) = %v; want %v", tt.d, got, tt.want)
		}
	}
}
