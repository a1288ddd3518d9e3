package ssh

import (
	"bytes"
	"io"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"testing"

	"github.com/felix-ops/felix/model"
)

// TestStageScriptLocally runs the staging script with this machine's
// /bin/sh the way sshd's login shell does: a missing candidate below $HOME
// is made private, and the job directory matches jobDirPattern.
func TestStageScriptLocally(t *testing.T) {
	home := t.TempDir()
	tests := []struct {
		name   string
		mode   string
		cands  []string
		want   string // the line's first word and candidate index
		wantIn string // the directory the job directory is in
	}{
		{"first works", "probe", []string{home + "/a", "/var/tmp"}, "ok 0", home + "/a"},
		{"home form", "probe", []string{"~/.felix/tmp"}, "ok 0", home + "/.felix/tmp"},
		{"unusable first", "probe", []string{"/proc/felix-none", "~/x"}, "ok 1", home + "/x"},
		{"trusted", "trust", []string{"/proc/felix-none", "~/y"}, "ok 1", home + "/y"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			cmd := exec.Command("/bin/sh", "-c", shellCommand(stageScript, ""))
			cmd.Env = []string{"HOME=" + home, "PATH=" + os.Getenv("PATH")}
			cmd.Stdin = strings.NewReader(tt.mode + "\n" + strings.Join(tt.cands, "\n") + "\n")
			out, err := cmd.Output()
			if err != nil {
				t.Fatalf("stage script: %v, stdout %q", err, out)
			}
			lines := strings.Split(strings.TrimSpace(string(out)), "\n")
			last := lines[len(lines)-1]
			if !strings.HasPrefix(last, tt.want+" ") {
				t.Fatalf("stage script printed %q; want a last line %q DIR", out, tt.want)
			}
			dir := strings.TrimPrefix(last, tt.want+" ")
			t.Cleanup(func() { os.RemoveAll(dir) })
			if filepath.Dir(dir) != tt.wantIn {
				t.Errorf("job directory %s; want one in %s", dir, tt.wantIn)
			}
			cand := tt.cands[len(tt.cands)-1]
			if tt.want == "ok 0" {
				cand = tt.cands[0]
			}
			if !jobDirPattern(cand).MatchString(dir) {
				t.Errorf("jobDirPattern(%q) does not match %s", cand, dir)
			}
			for _, d := range []string{dir, tt.wantIn} {
				fi, err := os.Stat(d)
				if err != nil {
					t.Fatal(err)
				}
				if fi.Mode().Perm() != 0o700 {
					t.Errorf("%s has mode %v; want 0700", d, fi.Mode().Perm())
				}
			}
			if ents, _ := os.ReadDir(dir); len(ents) != 0 {
				t.Errorf("job directory holds %v; want it empty (the probe removed)", ents)
			}
		})
	}
}

func TestJobDirPattern(t *testing.T) {
	tests := []struct {
		base string
		ok   []string
		bad  []string
	}{
		{"/tmp", []string{"/tmp/felix-job-aB3xY9"},
			[]string{"/tmp/felix-job-aB3xY", "/tmp/felix-job-aB3xY9/x", "/tmp/felix-job-aB3xY9 ", "/tmp/felix-job-......", "/var/tmp/felix-job-aB3xY9", "/tmp/x/felix-job-aB3xY9", "/", "/tmp"}},
		{"/", []string{"/felix-job-aB3xY9"}, []string{"//felix-job-aB3xY9", "/tmp/felix-job-aB3xY9"}},
		{"/srv/t.mp", []string{"/srv/t.mp/felix-job-000000"}, []string{"/srv/tamp/felix-job-000000"}},
		{"~/.felix/tmp", []string{"/root/.felix/tmp/felix-job-aB3xY9", "/home/op-1/.felix/tmp/felix-job-aB3xY9"},
			[]string{"/.felix/tmp/felix-job-aB3xY9", "/home/../.felix/tmp/felix-job-aB3xY9", "/home/a b/.felix/tmp/felix-job-aB3xY9",
				"/home/$x/.felix/tmp/felix-job-aB3xY9", "relative/.felix/tmp/felix-job-aB3xY9", "/root/.felix/tmp/felix-job-aB3xY9/..", "/root/.felix/tmp"}},
	}
	for _, tt := range tests {
		re := jobDirPattern(tt.base)
		for _, d := range tt.ok {
			if !re.MatchString(d) {
				t.Errorf("jobDirPattern(%q) does not match %q", tt.base, d)
			}
		}
		for _, d := range tt.bad {
			if re.MatchString(d) {
				t.Errorf("jobDirPattern(%q) matches %q", tt.base, d)
			}
		}
	}
}

func TestStageCandidates(t *testing.T) {
	tests := []struct {
		host, global string
		want         []string
	}{
		{"", "", []string{"/tmp", "/var/tmp", "~/.felix/tmp"}},
		{"", "/srv/tmp", []string{"/srv/tmp", "/var/tmp", "~/.felix/tmp"}},
		{"/opt/t", "/srv/tmp", []string{"/opt/t", "/var/tmp", "~/.felix/tmp"}},
		{"/var/tmp", "", []string{"/var/tmp", "~/.felix/tmp"}},
		{"~/.felix/tmp", "", []string{"~/.felix/tmp", "/var/tmp"}},
	}
	for _, tt := range tests {
		s := hostSpec{remoteTmp: tt.host, set: &settings{Config: Config{RemoteTmp: tt.global}}}
		if got := stageCandidates(s); strings.Join(got, ",") != strings.Join(tt.want, ",") {
			t.Errorf("stageCandidates(host %q, global %q) = %q; want %q", tt.host, tt.global, got, tt.want)
		}
	}
}

func TestParseInterpreter(t *testing.T) {
	tests := []struct {
		head    string
		want    string // argv joined by spaces; "binary" for a binary
		wantErr string
	}{
		{"#!/bin/bash -e\necho\n", "/bin/bash -e", ""},
		{"#!/usr/bin/env python3\nprint(1)\n", "/usr/bin/env python3", ""},
		{"#! /bin/sh\r\n", "/bin/sh", ""},
		{"#!/bin/sh", "/bin/sh", ""},
		{"echo hi\n", "/bin/sh", ""},
		{"", "/bin/sh", ""},
		{"\x7fELF\x02\x01", "binary", ""},
		{"ab\x00cd", "binary", ""},
		{"#!\n", "", "no interpreter"},
		{"#!bash\n", "", "absolute"},
		{"#!/bin/../bin/sh\n", "", "absolute"},
		{"#!/bin/sh$(reboot)\n", "", "absolute"},
		{"#!/bin/bash -e -u\n", "", "one argument"},
		{"#!/usr/bin/env $(reboot)\n", "", "plain program name"},
		{"#!/usr/bin/env -S python3 -u\n", "", "one argument"},
		{"#!/usr/bin/env -S\n", "", "plain program name"},
		{"#!/bin/sh ;reboot\n", "", "argument"},
		{"#!/bin/sh `x`\n", "", "argument"},
		{"#!/bin/" + strings.Repeat("a", maxShebang), "", "longer"},
	}
	for _, tt := range tests {
		head := []byte(tt.head)
		if len(head) > maxShebang {
			head = head[:maxShebang]
		}
		in, err := parseInterpreter(head)
		got := strings.Join(in.argv, " ")
		if in.binary {
			got = "binary"
		}
		switch {
		case tt.wantErr != "" && (err == nil || !strings.Contains(err.Error(), tt.wantErr)):
			t.Errorf("parseInterpreter(%q) = %q, %v; want an error with %q", tt.head, got, err, tt.wantErr)
		case tt.wantErr == "" && (err != nil || got != tt.want):
			t.Errorf("parseInterpreter(%q) = %q, %v; want %q", tt.head, got, err, tt.want)
		}
	}
}

func TestInterpretedLine(t *testing.T) {
	file := func(name, content string) *model.File {
		return &model.File{Name: name, Size: int64(len(content)), Open: func() (io.ReadCloser, error) {
			return io.NopCloser(bytes.NewReader([]byte(content))), nil
		}}
	}
	st := stage{dir: "/tmp/felix-job-abcdef", base: "/tmp", noexec: true}
	s := hostSpec{id: "h1"}
	cands := []string{"/tmp", "/var/tmp", "~/.felix/tmp"}
	tests := []struct {
		name, content, line, want, wantErr string
	}{
		{"d.sh", "#!/bin/bash -e\n", "./d.sh 'a b'", "/bin/bash -e './d.sh' 'a b'", ""},
		{"d.sh", "#!/bin/bash -e\n", "  './d.sh'", "/bin/bash -e './d.sh'", ""},
		{"d.py", "#!/usr/bin/env python3\n", "/tmp/felix-job-abcdef/d.py;echo", "/usr/bin/env python3 './d.py';echo", ""},
		{"d.sh", "echo hi\n", "./d.sh", "/bin/sh './d.sh'", ""},
		{"it's", "echo hi\n", `'./it'\''s'`, `/bin/sh './it'\''s'`, ""},
		{"d.sh", "#!/bin/bash\n", "bash d.sh", "bash d.sh", ""},
		{"d.sh", "#!/bin/bash\n", "./d.shx", "./d.shx", ""},
		{"tool", "\x7fELF\x02", "sha256sum tool", "sha256sum tool", ""},
		{"tool", "\x7fELF\x02", "./tool --x", "", "/tmp, /var/tmp, ~/.felix/tmp"},
		{"tool", "\x7fELF\x02", "./tool", "", "binary, not a script"},
		{"d.sh", "#!/bin/sh;x\n", "./d.sh", "", "cannot run through an interpreter"},
	}
	for _, tt := range tests {
		got, err := interpretedLine(s, st, cands, file(tt.name, tt.content), tt.line)
		switch {
		case tt.wantErr != "" && (err == nil || !strings.Contains(err.Error(), tt.wantErr) || !strings.Contains(err.Error(), "did not run")):
			t.Errorf("interpretedLine(%q, %q) = %q, %v; want an error with %q that says it did not run", tt.content, tt.line, got, err, tt.wantErr)
		case tt.wantErr == "" && (err != nil || got != tt.want):
			t.Errorf("interpretedLine(%q, %q) = %q, %v; want %q", tt.content, tt.line, got, err, tt.want)
		}
	}
}

func TestStageCache(t *testing.T) {
	var c stageCache
	if _, ok := c.get("k"); ok {
		t.Fatal("an empty cache knows k")
	}
	if !c.put("k", 1) || c.put("k", 1) {
		t.Error("put(k, 1) twice: want changed, then unchanged")
	}
	c.forget("k")
	if _, ok := c.get("k"); ok {
		t.Error("a forgotten choice is still used")
	}
	if c.put("k", 1) {
		t.Error("the same choice after forget: want unchanged (the operator was told already)")
	}
	if n, ok := c.get("k"); !ok || n != 1 {
		t.Errorf("get(k) = %d, %v; want 1, true", n, ok)
	}
	if !c.put("k", -1) {
		t.Error("a new choice: want changed")
	}
	for i := range stageCacheMax + 10 {
		c.put(strconv.Itoa(i), 0)
	}
	if len(c.m) > stageCacheMax {
		t.Errorf("cache holds %d entries; want at most %d", len(c.m), stageCacheMax)
	}
}
