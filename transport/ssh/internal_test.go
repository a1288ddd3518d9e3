package ssh

import (
	"bytes"
	"crypto/ed25519"
	"crypto/rand"
	"crypto/rsa"
	"os"
	"os/exec"
	"path/filepath"
	"reflect"
	"strings"
	"testing"

	"golang.org/x/crypto/ssh"
	"golang.org/x/crypto/ssh/knownhosts"
)

func TestFixedScriptsHaveNoSingleQuote(t *testing.T) {
	for name, s := range map[string]string{"wrapper": wrapperScript, "sftp-server": sftpServerScript, "kill": killScript("123", killGrace), "stage": stageScript} {
		if strings.ContainsAny(s, "'\n") {
			t.Errorf("%s script holds a single quote or a newline; it is single-quoted on one line", name)
		}
	}
}

// TestWrapperLocally runs the wrapper with this machine's /bin/sh, the way
// sshd's login shell does, and checks values arrive as data.
func TestWrapperLocally(t *testing.T) {
	dir := t.TempDir()
	pwned := dir + "/pwned"
	inject := "$(touch " + pwned + ")`touch " + pwned + "`"
	sub := dir + "/d " + inject + " \\ 'x\""
	if err := exec.Command("mkdir", "-p", sub).Run(); err != nil {
		t.Fatal(err)
	}
	r := runSpec{
		line: "printf '<%s>\\n' \"$A\" \"$B\" \"$(pwd)\" \"$#\"\nprintf 'end\\n'\n\n",
		env:  []string{"A=" + inject, "B=x\ny\\n\\\\ %b"},
		dir:  sub,
	}
	cmd := exec.Command("/bin/sh", "-c", shellCommand(wrapperScript, ""))
	cmd.Stdin = bytes.NewReader(r.payload("tok"))
	var stdout, stderr bytes.Buffer
	cmd.Stdout, cmd.Stderr = &stdout, &stderr
	if err := cmd.Run(); err != nil {
		t.Fatalf("wrapper: %v\n%s", err, stderr.String())
	}
	want := "<" + inject + ">\n<x\ny\\n\\\\ %b>\n<" + sub + ">\n<0>\nend\n"
	if stdout.String() != want {
		t.Errorf("stdout = %q\nwant     %q", stdout.String(), want)
	}
	if !strings.HasPrefix(stderr.String(), "tok pgid ") {
		t.Errorf("stderr = %q; want the status line", stderr.String())
	}
	if out, _ := exec.Command("ls", dir).Output(); strings.Contains(string(out), "pwned") {
		t.Errorf("a value was run as code")
	}

	cmd = exec.Command("/bin/sh", "-c", shellCommand(wrapperScript, ""))
	cmd.Stdin = bytes.NewReader(runSpec{line: "touch " + pwned, dir: dir + "/missing"}.payload("tok"))
	out, _ := cmd.CombinedOutput()
	if string(out) != "tok cd\n" {
		t.Errorf("missing directory: output %q; want the cd status line", out)
	}
}

func TestStatusFilter(t *testing.T) {
	tests := []struct {
		name   string
		chunks []string
		out    string
		pgid   string
		cd     bool
	}{
		{"status first", []string{"tok pgid 4242\nerr\n"}, "err\n", "4242", false},
		{"split and noise", []string{"noise from .bashrc\nto", "k pgid 77", "\nafter"}, "noise from .bashrc\nafter", "77", false},
		{"cd", []string{"tok cd\n"}, "", "", true},
		{"bad pgid", []string{"tok pgid 1\n"}, "", "", false},
		{"not a number", []string{"tok pgid 12; rm\n"}, "", "", false},
		{"no status", []string{"sudo: a password is required\n", "partial"}, "sudo: a password is required\npartial", "", false},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			var out bytes.Buffer
			f := newStatusFilter("tok", func(b []byte) { out.Write(b) })
			for _, c := range tt.chunks {
				f.write([]byte(c))
			}
			f.flush()
			<-f.known
			if out.String() != tt.out || f.pgid != tt.pgid || f.cd != tt.cd {
				t.Errorf("out %q pgid %q cd %v; want %q %q %v", out.String(), f.pgid, f.cd, tt.out, tt.pgid, tt.cd)
			}
		})
	}
}

func TestValidPGID(t *testing.T) {
	for in, want := range map[string]string{"42": "42", "007": "7", "1": "", "0": "", "-5": "", "": "", "4 2": "", "99999999999": ""} {
		if got := validPGID(in); got != want {
			t.Errorf("validPGID(%q) = %q; want %q", in, got, want)
		}
	}
}

func TestKeyAlgorithms(t *testing.T) {
	_, edPriv, _ := ed25519.GenerateKey(rand.Reader)
	ed, _ := ssh.NewSignerFromKey(edPriv)
	rsaPriv, err := rsa.GenerateKey(rand.Reader, 2048)
	if err != nil {
		t.Fatal(err)
	}
	rs, _ := ssh.NewSignerFromKey(rsaPriv)
	got := keyAlgorithms([]ssh.PublicKey{rs.PublicKey(), ed.PublicKey()})
	want := []string{ssh.KeyAlgoED25519, ssh.KeyAlgoRSASHA512, ssh.KeyAlgoRSASHA256, ssh.KeyAlgoRSA}
	if !reflect.DeepEqual(got, want) {
		t.Errorf("keyAlgorithms = %q; want %q", got, want)
	}
}

func TestDropHost(t *testing.T) {
	tests := []struct{ line, want string }{
		{"[h]:2222 ssh-ed25519 AAAA", ""},
		{"h2,[h]:2222 ssh-ed25519 AAAA", "h2 ssh-ed25519 AAAA\n"},
		{"[h]:22 ssh-ed25519 AAAA", "[h]:22 ssh-ed25519 AAAA\n"},
		{"# [h]:2222 comment", "# [h]:2222 comment\n"},
		{"@revoked [h]:2222 ssh-ed25519 AAAA", "@revoked [h]:2222 ssh-ed25519 AAAA\n"},
	}
	for _, tt := range tests {
		if got := dropHost(tt.line, "[h]:2222"); got != tt.want {
			t.Errorf("dropHost(%q) = %q; want %q", tt.line, got, tt.want)
		}
	}
	hashed := knownhosts.HashHostname("[h]:2222")
	if !hashedMatch(hashed, "[h]:2222") || hashedMatch(hashed, "[h]:2223") {
		t.Errorf("hashed host %s: matching wrong", hashed)
	}
	if got := dropHost(hashed+" ssh-ed25519 AAAA", "[h]:2222"); got != "" {
		t.Errorf("hashed line kept: %q", got)
	}
}

func TestTrustArg(t *testing.T) {
	for in, want := range map[string]string{"10.0.0.7:22": "10.0.0.7", "10.0.0.7:2222": "10.0.0.7:2222", "[::1]:22": "::1", "[::1]:2200": "[::1]:2200"} {
		if got := trustArg(in); got != want {
			t.Errorf("trustArg(%q) = %q; want %q", in, got, want)
		}
	}
}

func TestKeyAllowed(t *testing.T) {
	keys, other := t.TempDir(), t.TempDir()
	inside := filepath.Join(keys, "id_web")
	outside := filepath.Join(other, "master.key")
	escape := filepath.Join(keys, "sneaky") // a link in the key dir to a file outside it
	for _, f := range []string{inside, outside} {
		if err := os.WriteFile(f, []byte("k"), 0o600); err != nil {
			t.Fatal(err)
		}
	}
	if err := os.Symlink(outside, escape); err != nil {
		t.Fatal(err)
	}
	p := &settings{Config: Config{KeyDirs: []string{keys}}}
	tests := []struct {
		path string
		ok   bool
	}{
		{inside, true},
		{outside, false},
		{escape, false},
		{filepath.Join(keys, "..", filepath.Base(other), "master.key"), false},
		{filepath.Join(keys, "missing"), false},
	}
	for _, tt := range tests {
		if err := p.keyAllowed(tt.path); (err == nil) != tt.ok {
			t.Errorf("keyAllowed(%s) = %v; want ok=%v", tt.path, err, tt.ok)
		}
	}
	if err := (&settings{}).keyAllowed(outside); err != nil {
		t.Errorf("no KeyDirs: keyAllowed = %v; want no confinement", err)
	}
}
