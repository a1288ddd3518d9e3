package ssh

import (
	"bufio"
	"bytes"
	"errors"
	"fmt"
	"log/slog"
	"os"
	"path"
	"path/filepath"
	"strconv"
	"strings"

	"github.com/felix-ops/felix/model"
)

// This file holds what the pool applies to a target before dialling it,
// besides the target's own settings: per-group jump hosts (Config.Jump)
// and the OpenSSH client configuration file (Config.SSHConfig).
//
// Precedence: the host's own settings (the inventory) first; then, for jump
// hosts, the first matching Config.Jump rule; then ssh_config. Port 22 in a
// target counts as unset, since the inventory stores a missing port as 22.

// jumpRule is one Config.Jump entry: hosts whose label key has a value
// matching glob go through hops.
type jumpRule struct {
	key, glob string
	hops      []model.SSHHop
}

// parseJumpRules checks Config.Jump: "KEY=GLOB HOPS" each.
func parseJumpRules(rules []string) ([]jumpRule, error) {
	out := make([]jumpRule, 0, len(rules))
	for _, r := range rules {
		sel, via, ok := strings.Cut(strings.TrimSpace(r), " ")
		k, glob, okSel := strings.Cut(sel, "=")
		via = strings.TrimSpace(via)
		if !ok || !okSel || k == "" || glob == "" || via == "" {
			return nil, fmt.Errorf("ssh.jump %q: want \"LABEL=VALUE JUMPHOSTS\", e.g. \"group=lab bastion1,ops@bastion2:2222\"", r)
		}
		if _, err := path.Match(glob, ""); err != nil {
			return nil, fmt.Errorf("ssh.jump %q: bad pattern %q", r, glob)
		}
		hops, err := model.ParseProxyJump(via)
		if err != nil || len(hops) == 0 {
			return nil, fmt.Errorf("ssh.jump %q: %v", r, err)
		}
		out = append(out, jumpRule{key: k, glob: glob, hops: hops})
	}
	return out, nil
}

// CheckJumpRules reports why rules cannot be Config.Jump, or nil.
func CheckJumpRules(rules []string) error {
	_, err := parseJumpRules(rules)
	return err
}

// groupJump returns the hops of the first rule matching labels, or nil; a
// rule on "group" also matches any of the inventory groups.
func (set *settings) groupJump(labels map[string]string, groups []string) []model.SSHHop {
	for _, r := range set.jumpRules {
		if v, ok := labels[r.key]; ok {
			if m, _ := path.Match(r.glob, v); m {
				return r.hops
			}
		}
		if r.key != "group" {
			continue
		}
		for _, g := range groups {
			if m, _ := path.Match(r.glob, g); m {
				return r.hops
			}
		}
	}
	return nil
}

// sshConfig is a parsed OpenSSH client configuration file: the keywords
// felix honours, by Host block, in file order.
type sshConfig struct {
	blocks []sshBlock
}

type sshBlock struct {
	patterns []string // Host patterns; "!x" negates
	values   map[string]string
}

// sshHost is what ssh_config says about one host name: "" or 0 when it
// says nothing.
type sshHost struct {
	hostName, user, identityFile, proxyJump string
	port                                    int
}

// honoured are the ssh_config keywords felix reads (lower case).
var honoured = map[string]bool{"hostname": true, "user": true, "port": true, "identityfile": true, "proxyjump": true}

// loadSSHConfig reads an OpenSSH client configuration file. Unknown
// keywords are ignored; Include, Match and ProxyCommand are not supported
// and said so once in the log; entries with values felix will not use
// (shell metacharacters, whitespace, a leading '-', % tokens, a ProxyJump
// that is not the plain syntax) are refused with a log line naming the
// file and line. Like OpenSSH, the first value found wins.
func loadSSHConfig(file string, log *slog.Logger) (*sshConfig, error) {
	data, err := os.ReadFile(file)
	if errors.Is(err, os.ErrNotExist) {
		// As OpenSSH: a missing file says nothing.
		log.Warn("ssh config file does not exist; nothing read from it", "file", file)
		return &sshConfig{}, nil
	}
	if err != nil {
		return nil, fmt.Errorf("read ssh config: %w", err)
	}
	home, _ := os.UserHomeDir()
	cfg := &sshConfig{blocks: []sshBlock{{patterns: []string{"*"}, values: map[string]string{}}}}
	cur := &cfg.blocks[0]
	skipping := false // inside a Match block
	said := map[string]bool{}
	sayOnce := func(what string, n int) {
		if !said[what] {
			said[what] = true
			log.Warn("ssh config: "+what, "file", file, "line", n)
		}
	}
	sc := bufio.NewScanner(bytes.NewReader(data))
	for n := 1; sc.Scan(); n++ {
		line := strings.TrimSpace(sc.Text())
		if line == "" || line[0] == '#' {
			continue
		}
		kw, arg := splitKeyword(line)
		kw = strings.ToLower(kw)
		switch kw {
		case "host":
			skipping = false
			cfg.blocks = append(cfg.blocks, sshBlock{patterns: strings.Fields(arg), values: map[string]string{}})
			cur = &cfg.blocks[len(cfg.blocks)-1]
			continue
		case "match":
			skipping = true
			sayOnce("Match blocks are not supported; their entries are ignored", n)
			continue
		case "include":
			sayOnce("Include is not supported; the included files are ignored", n)
			continue
		case "proxycommand":
			sayOnce("ProxyCommand is not supported (felix runs no commands to connect); use ProxyJump", n)
			continue
		}
		if skipping || !honoured[kw] {
			continue
		}
		if _, set := cur.values[kw]; set {
			continue
		}
		v := strings.Trim(arg, `"`)
		var bad error
		switch {
		case v == "" || strings.ContainsAny(v, " \t;&|$`'\"\\<>(){}*?!%\n") || v[0] == '-':
			bad = fmt.Errorf("%q: felix refuses empty values, shell metacharacters, blanks, %% tokens and a leading '-'", arg)
		case kw == "hostname":
			bad = model.ValidHost(v)
		case kw == "user":
			bad = model.ValidUser(v)
		case kw == "port":
			p, err := strconv.Atoi(v)
			if err != nil {
				bad = fmt.Errorf("port %q: want 1-65535", v)
			} else {
				bad = model.ValidPort(p)
			}
		case kw == "identityfile":
			if strings.HasPrefix(v, "~/") && home != "" {
				v = filepath.Join(home, v[2:])
			}
			bad = model.ValidKeyPath(v)
		case kw == "proxyjump":
			_, bad = model.ParseProxyJump(v)
		}
		if bad != nil {
			log.Warn("ssh config entry refused", "file", file, "line", n, "keyword", kw, "err", bad)
			continue
		}
		cur.values[kw] = v
	}
	if err := sc.Err(); err != nil {
		return nil, fmt.Errorf("read ssh config %s: %w", file, err)
	}
	return cfg, nil
}

// splitKeyword splits "Keyword value", "Keyword=value" or "Keyword = value".
func splitKeyword(line string) (kw, arg string) {
	i := strings.IndexAny(line, " \t=")
	if i < 0 {
		return line, ""
	}
	kw, arg = line[:i], strings.TrimSpace(line[i:])
	arg = strings.TrimSpace(strings.TrimPrefix(arg, "="))
	return kw, arg
}

// lookup returns what the file says about host, first value winning.
func (c *sshConfig) lookup(host string) sshHost {
	var h sshHost
	if c == nil {
		return h
	}
	got := map[string]string{}
	for _, b := range c.blocks {
		if !hostMatches(b.patterns, host) {
			continue
		}
		for k, v := range b.values {
			if _, set := got[k]; !set {
				got[k] = v
			}
		}
	}
	h.hostName, h.user, h.identityFile, h.proxyJump = got["hostname"], got["user"], got["identityfile"], got["proxyjump"]
	h.port, _ = strconv.Atoi(got["port"])
	return h
}

// hostMatches applies ssh_config's Host patterns: any negated pattern that
// matches excludes the host; otherwise one positive match is needed.
func hostMatches(patterns []string, host string) bool {
	matched := false
	for _, p := range patterns {
		neg := strings.HasPrefix(p, "!")
		p = strings.TrimPrefix(p, "!")
		ok, err := path.Match(p, host)
		if err != nil || !ok {
			continue
		}
		if neg {
			return false
		}
		matched = true
	}
	return matched
}

// applyHostConfig fills in what t leaves unset from the group rules and
// ssh_config (see the top of this file).
func (set *settings) applyHostConfig(st model.SSHTarget) model.SSHTarget {
	if len(st.Jump) == 0 && !st.NoJump {
		st.Jump = set.groupJump(st.Labels, st.Groups)
	}
	if set.sshConfig == nil {
		return st
	}
	h := set.sshConfig.lookup(st.Host)
	if h.hostName != "" {
		st.Host = h.hostName
	}
	if h.port != 0 && (st.Port == 0 || st.Port == model.DefaultSSHPort) {
		st.Port = h.port
	}
	if st.User == "" {
		st.User = h.user
	}
	if st.KeyPath == "" {
		st.KeyPath = h.identityFile
	}
	if len(st.Jump) == 0 && !st.NoJump && h.proxyJump != "" && h.proxyJump != model.ProxyJumpNone {
		st.Jump, _ = model.ParseProxyJump(h.proxyJump) // checked when loaded
	}
	// Each hop may be an alias of the file too.
	if len(st.Jump) > 0 {
		hops := make([]model.SSHHop, len(st.Jump))
		for i, hop := range st.Jump {
			hh := set.sshConfig.lookup(hop.Host)
			if hh.hostName != "" {
				hop.Host = hh.hostName
			}
			if hop.Port == 0 {
				hop.Port = hh.port
			}
			if hop.User == "" {
				hop.User = hh.user
			}
			if hop.KeyPath == "" {
				hop.KeyPath = hh.identityFile
			}
			hops[i] = hop
		}
		st.Jump = hops
	}
	return st
}
