package sshtest

import (
	"io"
	"net"
	"os"
	"strings"
	"testing"
	"time"

	"golang.org/x/crypto/ssh"
)

func TestSHA512Crypt(t *testing.T) {
	tests := []struct{ pw, salt, want string }{
		// From `openssl passwd -6 -salt SALT PW`.
		{"hunter2 x", "abcdefgh12345678", "$6$abcdefgh12345678$fXKTcBlv5iIbzpchR/Z63C1pSwwja55QD2HYwWEIXMx1EpeC7dpxqXTMv7yHFp/9WSWsM4K8RShfK0rglkw.Y/"},
		{strings.Repeat("p", 100), "saltsalt", "$6$saltsalt$r7KTlpc.QcqmVVh/N8OkXimxn/IOIZG5hPPXTKiq7Jc8ZjgO5RmzqJz/6FwhIxZHhqM92lYM4/0.Drma4oL3V1"},
		// From Drepper's specification.
		{"Hello world!", "saltstring", "$6$saltstring$svn8UoSVapNtMuq1ukKS4tPQd8iKwSMHWjl/O817G3uBnIFNjnQJuesI68u4OTLiBFdcbYEdFCoEOfaS35inz1"},
	}
	for _, tt := range tests {
		if got := sha512Crypt(tt.pw, tt.salt); got != tt.want {
			t.Errorf("sha512Crypt(%q, %q) = %q; want %q", tt.pw, tt.salt, got, tt.want)
		}
	}
}

func TestStartStop(t *testing.T) {
	s := Start(t, "127.0.0.2", MaxSessions(3))
	if s.HostKeyFingerprint == "" || !strings.HasPrefix(s.HostKeyFingerprint, "SHA256:") {
		t.Errorf("HostKeyFingerprint = %q", s.HostKeyFingerprint)
	}
	if !strings.HasPrefix(s.KnownHostsLine, "[127.0.0.2]:") {
		t.Errorf("KnownHostsLine = %q; want the [host]:port form", s.KnownHostsLine)
	}
	if _, err := os.Stat(s.ClientKey); err != nil {
		t.Errorf("client key: %v", err)
	}
	c, err := net.DialTimeout("tcp", s.Addr, 5*time.Second)
	if err != nil {
		t.Fatalf("dial %s: %v", s.Addr, err)
	}
	c.Close()
	s.Stop()
	if c, err := net.DialTimeout("tcp", s.Addr, 5*time.Second); err == nil {
		c.Close()
		t.Errorf("dial %s after Stop succeeded", s.Addr)
	}
	s.Stop() // twice is fine
}

// TestDropbearHasNoSFTPServer logs into a Dropbear server with its client
// key and host key and sees what a client of a host without sftp-server
// sees: the subsystem accepted, then the channel closed with exit status
// 127 and "not found", before any SFTP version packet.
func TestDropbearHasNoSFTPServer(t *testing.T) {
	s := StartDropbear(t, "127.0.0.2")
	key, err := os.ReadFile(s.ClientKey)
	if err != nil {
		t.Fatal(err)
	}
	signer, err := ssh.ParsePrivateKey(key)
	if err != nil {
		t.Fatal(err)
	}
	c, err := ssh.Dial("tcp", s.Addr, &ssh.ClientConfig{
		User:              s.User,
		Auth:              []ssh.AuthMethod{ssh.PublicKeys(signer)},
		HostKeyCallback:   ssh.FixedHostKey(s.HostKey),
		HostKeyAlgorithms: []string{s.HostKey.Type()},
		Timeout:           10 * time.Second,
	})
	if err != nil {
		t.Fatalf("dial dropbear: %v\n%s", err, s.Log())
	}
	defer c.Close()
	sess, err := c.NewSession()
	if err != nil {
		t.Fatal(err)
	}
	out, err := sess.Output(`echo "$HOME"; echo "$0"`)
	if err != nil {
		t.Fatalf("run: %v", err)
	}
	if want := s.Dir + "/home\n"; !strings.HasPrefix(string(out), want) {
		t.Errorf("HOME = %q; want %q (a test-only home)", out, want)
	}
	ch, reqs, err := c.OpenChannel("session", nil)
	if err != nil {
		t.Fatal(err)
	}
	status := make(chan uint32, 1)
	go func() {
		for r := range reqs {
			if r.Type == "exit-status" && len(r.Payload) == 4 {
				status <- uint32(r.Payload[0])<<24 | uint32(r.Payload[1])<<16 | uint32(r.Payload[2])<<8 | uint32(r.Payload[3])
			}
		}
		close(status)
	}()
	ok, err := ch.SendRequest("subsystem", true, ssh.Marshal(struct{ Name string }{"sftp"}))
	if err != nil || !ok {
		t.Fatalf("sftp subsystem: %v, %v; want accepted", ok, err)
	}
	stdout, _ := io.ReadAll(ch)
	stderr, _ := io.ReadAll(ch.Stderr())
	code, got := <-status
	if !got || code != 127 || len(stdout) != 0 || !strings.Contains(string(stderr), "not found") {
		t.Errorf("sftp subsystem: exit status %d (%v), stdout %q, stderr %q; want 127, nothing and not found", code, got, stdout, stderr)
	}
}
