package bootstrap

import (
	"fmt"
	"path/filepath"
	"regexp"

	"github.com/felix-ops/felix/model"
)

// pathRE is what an install root may hold: no space, quote, glob,
// redirection or other shell metacharacter.
var pathRE = regexp.MustCompile(`^/[A-Za-z0-9/._+@,=-]*$`)

// ParseHost parses "[user@]host[:port]" (an IPv6 address in brackets when a
// port follows) into an SSH target, with the agentless hosts' checks
// (model): no shell metacharacters, no leading '-', nothing that could
// turn into an option or a command. port is used when s names none (0:
// 22) and key is the private key file on the master ("" for the
// configured ones).
func ParseHost(s string, port int, key string) (model.SSHTarget, error) {
	user, host, p, err := model.ParseHostSpec(s)
	if err != nil {
		return model.SSHTarget{}, err
	}
	if p == 0 {
		p = port
	}
	if p == 0 {
		p = model.DefaultSSHPort
	}
	if err := model.ValidPort(p); err != nil {
		return model.SSHTarget{}, err
	}
	if err := model.ValidKeyPath(key); err != nil {
		return model.SSHTarget{}, err
	}
	return model.SSHTarget{Host: host, Port: p, User: user, KeyPath: key}, nil
}

// ValidInstallRoot reports why root cannot be an install root: it must be ""
// (the real paths) or a clean absolute path of plain characters other than "/".
func ValidInstallRoot(root string) error {
	if root == "" {
		return nil
	}
	if root == "/" || !pathRE.MatchString(root) || filepath.Clean(root) != root {
		return fmt.Errorf("install root %q: want a clean absolute path of letters, digits and / . _ + @ , = -", root)
	}
	return nil
}
