package model

import "fmt"

// Target is one host a job runs on, as resolved from the inventory.
type Target struct {
	ID          string
	Addr        string // what the agent transport dials (host:port of the minion)
	Fingerprint string // the minion's pinned certificate; "" when the host has no accepted minion
	// SSH, when set, says how to reach the host agentlessly.
	SSH *SSHTarget
	// Mode is the transport the request asked for: ModeAuto (or ""),
	// ModeAgent or ModeSSH; the selecting transport honours it.
	Mode string
	// Skip, when set, is the final state the host gets without running
	// anything (StateNotAccepted, StateUnknown, StateUnreachable).
	Skip  State
	Error string // with Skip: why
	// PkgManager is the host's pkg_manager label (PkgLabel), if any: the
	// package manager to use instead of the detected one.
	PkgManager string
}

// SSHTarget is how a host is reached over SSH. Every field is data, never
// spliced into a shell.
type SSHTarget struct {
	Host    string // name or IP address
	Port    int    // 0 means DefaultSSHPort
	User    string // "" means the transport's default (root)
	KeyPath string // "" means the transport's configured keys and agent
	Become  bool   // run the command with sudo -n
	// BecomeUser is whom become runs as (sudo -n -u USER), a
	// ValidUser name; "" is root. Set, it implies Become.
	BecomeUser string
	// RemoteTmp is where script and file commands are staged (ValidRemoteTmp);
	// "" means the transport's default.
	RemoteTmp string
	// Jump are the jump hosts (bastions) to go through, first hop first;
	// empty means a direct connection, or those the transport's per-group
	// rules (ssh.jump) give the host's Labels.
	Jump []SSHHop
	// NoJump asks for a direct connection even where a group rule names
	// jump hosts (ProxyJump "none").
	NoJump bool
	// Labels are the host's labels, which the transport's per-group rules
	// match.
	Labels map[string]string
	// Groups are the host's inventory groups, ancestors included: a
	// per-group rule on "group" matches any of them as well as the label.
	Groups []string
}

// SSHJump returns the SSHTarget fields for a host's proxy_jump setting
// (ParseProxyJump's syntax): its hops, or NoJump for "none".
func SSHJump(proxyJump string) (hops []SSHHop, noJump bool, err error) {
	hops, err = ParseProxyJump(proxyJump)
	return hops, proxyJump == ProxyJumpNone, err
}

// Transport modes a request may ask for (Target.Mode).
const (
	ModeAuto  = "auto"  // the minion when the host has an accepted one, else SSH; SSH when the minion cannot be reached
	ModeAgent = "agent" // the minion only
	ModeSSH   = "ssh"   // SSH only
)

// ValidMode reports why m is not a transport mode, or nil; "" means auto.
func ValidMode(m string) error {
	switch m {
	case "", ModeAuto, ModeAgent, ModeSSH:
		return nil
	}
	return fmt.Errorf("transport %q: want auto, agent or ssh", m)
}
