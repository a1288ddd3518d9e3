package ssh

import (
	"errors"
	"fmt"
	"io"
	"strings"
	"testing"

	"github.com/felix-ops/felix/exec"
)

// TestStartRetryDecision checks which failed session requests are tried
// again on a new session: only those the server surely did not act on.
func TestStartRetryDecision(t *testing.T) {
	tests := []struct {
		name                          string
		kind                          string
		err                           error
		closed, exited, output, alive bool
		attempt                       int
		wantUnanswered, wantRetry     bool
	}{
		{name: "closed with nothing, connection up", kind: "exec", err: io.EOF, closed: true, alive: true, attempt: 1, wantUnanswered: true, wantRetry: true},
		{name: "closed with nothing, last attempt", kind: "exec", err: io.EOF, closed: true, alive: true, attempt: 4, wantUnanswered: true},
		{name: "unanswered subsystem", kind: "subsystem", err: io.EOF, closed: true, alive: true, attempt: 1, wantUnanswered: true, wantRetry: true},
		{name: "connection down", kind: "exec", err: io.EOF, closed: true, attempt: 1},
		{name: "exit status arrived", kind: "exec", err: io.EOF, closed: true, exited: true, alive: true, attempt: 1},
		{name: "output arrived", kind: "exec", err: io.EOF, closed: true, output: true, alive: true, attempt: 1},
		{name: "channel not closed", kind: "exec", err: io.EOF, alive: true, attempt: 1},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			err := classifyStart(tt.kind, tt.err, tt.closed, tt.exited, tt.output, tt.alive)
			if got := errors.Is(err, errUnanswered); got != tt.wantUnanswered {
				t.Errorf("classifyStart = %v; unanswered %v, want %v", err, got, tt.wantUnanswered)
			}
			if !errors.Is(err, tt.err) {
				t.Errorf("classifyStart = %v; want it to wrap %v", err, tt.err)
			}
			if got := retryStart(tt.kind, err, tt.attempt); got != tt.wantRetry {
				t.Errorf("retryStart(%q, %v, %d) = %v; want %v", tt.kind, err, tt.attempt, got, tt.wantRetry)
			}
		})
	}

	refused := fmt.Errorf("exec request: %w", errRefused)
	for _, tt := range []struct {
		kind    string
		attempt int
		want    bool
	}{
		{"exec", 1, true},
		{"exec", 3, true},
		{"exec", 4, false},
		{"subsystem", 1, false}, // a refused subsystem is the server's answer
	} {
		if got := retryStart(tt.kind, refused, tt.attempt); got != tt.want {
			t.Errorf("retryStart(%q, refused, %d) = %v; want %v", tt.kind, tt.attempt, got, tt.want)
		}
	}
}

// TestStartErrorText checks what a failed start says: whether the
// command can have run, and unreachable only when it did not.
func TestStartErrorText(t *testing.T) {
	s := hostSpec{id: "web1", user: "root", addr: "10.0.0.1:22"}
	tests := []struct {
		name            string
		kind            string
		err             error
		attempts        int
		want            string
		wantUnreachable bool
	}{
		{"unanswered", "exec", classifyStart("exec", io.EOF, true, false, false, true), 4,
			"start a command on root@10.0.0.1:22: exec request: the server closed the session without answering the request (EOF) (4 sessions tried); the command did not run", true},
		{"refused", "exec", fmt.Errorf("exec request: %w", errRefused), 1,
			"start a command on root@10.0.0.1:22: exec request: refused by the server; the command did not run", true},
		{"connection failed", "exec", classifyStart("exec", io.EOF, true, false, false, false), 1,
			"start a command on root@10.0.0.1:22: exec request: EOF (the connection failed after the request was sent: the command may have run)", false},
		{"subsystem", "subsystem", classifyStart("subsystem", io.EOF, true, false, false, false), 1,
			"start a subsystem on root@10.0.0.1:22: subsystem request: EOF (the connection failed after the request was sent: the command may have run)", false},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			err := startError(s, tt.kind, tt.attempts, tt.err)
			got := err.Error()
			if unreach := errors.Is(err, exec.ErrUnreachable); unreach != tt.wantUnreachable {
				t.Errorf("unreachable = %v; want %v", unreach, tt.wantUnreachable)
			}
			if !strings.HasPrefix(got, tt.want) {
				t.Errorf("startError = %q; want %q", got, tt.want)
			}
		})
	}
}

// TestFSScriptsHaveNoSingleQuote checks execFS's scripts can be
// single-quoted for the login shell, as the wrapper is.
func TestFSScriptsHaveNoSingleQuote(t *testing.T) {
	for _, script := range []string{fsLstat, fsStat, fsReadLink, fsRealPath, fsMkdir, fsMkdirAll, fsChmod, fsChown,
		fsRemove, fsRmdir, fsRename, fsLink, fsSymlink, fsSHA256, fsCreate, fsOpen} {
		if strings.ContainsAny(fsPrelude+script, "'\n") {
			t.Errorf("script %q has a single quote or a newline", script)
		}
	}
}
