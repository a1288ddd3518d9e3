package sshtest

import (
	"net"
	"os"
	"strings"
	"testing"
	"time"
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
