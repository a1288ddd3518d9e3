package ssh

import (
	"errors"
	"fmt"
	"io"
	"net"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"time"

	"golang.org/x/crypto/ssh"
	"golang.org/x/crypto/ssh/agent"
)

// defaultKeyNames are the key files tried in ~/.ssh when none are configured.
var defaultKeyNames = []string{"id_ed25519", "id_ecdsa", "id_rsa"}

// keyring caches the signers of key files, so a passphrase is asked for at
// most once per file.
type keyring struct {
	mu    sync.Mutex          // protects cache; held while a key loads (and its prompt runs)
	cache map[string]keyEntry // by path and the passphrase environment at the time
}

type keyEntry struct {
	signer ssh.Signer
	err    error
}

// keyFiles returns the key files to offer to s: its own, else the
// configured ones, else the usual ones in ~/.ssh that exist.
func (p *Pool) keyFiles(s hostSpec) []string {
	if s.keyPath != "" {
		return []string{s.keyPath}
	}
	if len(s.set.KeyFiles) > 0 {
		return s.set.KeyFiles
	}
	home, err := os.UserHomeDir()
	if err != nil {
		return nil
	}
	var paths []string
	for _, n := range defaultKeyNames {
		path := filepath.Join(home, ".ssh", n)
		if _, err := os.Stat(path); err == nil {
			paths = append(paths, path)
		}
	}
	return paths
}

// signer loads a private key file, decrypting it with the passphrase from
// the environment or the prompt. Results, failures included, are cached.
func (p *Pool) signer(path string) (ssh.Signer, error) {
	env := os.Getenv(EnvPassphrase)
	cacheKey := path + "\x00" + env
	p.keys.mu.Lock()
	defer p.keys.mu.Unlock()
	if e, ok := p.keys.cache[cacheKey]; ok {
		return e.signer, e.err
	}
	s, err := p.loadKey(path, env)
	if p.keys.cache == nil {
		p.keys.cache = make(map[string]keyEntry)
	}
	p.keys.cache[cacheKey] = keyEntry{s, err}
	return s, err
}

func (p *Pool) loadKey(path, passphrase string) (ssh.Signer, error) {
	pem, err := os.ReadFile(path)
	if err != nil {
		return nil, fmt.Errorf("read key %s: %w", path, err)
	}
	s, err := ssh.ParsePrivateKey(pem)
	var missing *ssh.PassphraseMissingError
	if !errors.As(err, &missing) {
		if err != nil {
			return nil, fmt.Errorf("parse key %s: %w", path, err)
		}
		return s, nil
	}
	pw := []byte(passphrase)
	if len(pw) == 0 && p.conf().Prompt != nil {
		if pw, err = p.conf().Prompt(path); err != nil {
			return nil, fmt.Errorf("key %s is encrypted: ask for its passphrase: %w", path, err)
		}
	}
	if len(pw) == 0 {
		return nil, fmt.Errorf("key %s is encrypted and %s is not set", path, EnvPassphrase)
	}
	s, err = ssh.ParsePrivateKeyWithPassphrase(pem, pw)
	if err != nil {
		return nil, fmt.Errorf("decrypt key %s: %w", path, err)
	}
	return s, nil
}

// authMethods returns how to authenticate to s: public keys (ssh-agent
// first, then key files), then a password from the environment if set.
// The closer ends the agent connection; call it after the handshake.
// Keys that cannot be used are skipped with a debug log and listed in
// skipped, for the error message should authentication fail.
func (p *Pool) authMethods(s hostSpec) (methods []ssh.AuthMethod, closer io.Closer, skipped []string) {
	var signers []ssh.Signer
	closer = io.NopCloser(nil)
	if sock := os.Getenv("SSH_AUTH_SOCK"); sock != "" && !s.set.NoAgent {
		c, err := net.DialTimeout("unix", sock, 2*time.Second)
		if err != nil {
			p.log.Debug("ssh-agent unavailable", "socket", sock, "err", err)
		} else {
			closer = c
			as, err := agent.NewClient(c).Signers()
			if err != nil {
				p.log.Debug("ssh-agent keys unavailable", "socket", sock, "err", err)
			}
			signers = append(signers, as...)
		}
	}
	for _, path := range p.keyFiles(s) {
		if s.keyPath != "" {
			if err := s.set.keyAllowed(path); err != nil {
				p.log.Warn("ssh key refused", "host", s.addr, "err", err)
				skipped = append(skipped, err.Error())
				continue
			}
		}
		sg, err := p.signer(path)
		if err != nil {
			p.log.Debug("ssh key skipped", "host", s.addr, "err", err)
			skipped = append(skipped, err.Error())
			continue
		}
		signers = append(signers, sg)
	}
	if len(signers) > 0 {
		methods = append(methods, ssh.PublicKeys(signers...))
	}
	if pw := os.Getenv(EnvPassword); pw != "" && p.passwordAllowed(s) {
		methods = append(methods, ssh.Password(pw),
			ssh.KeyboardInteractive(func(_, _ string, questions []string, echos []bool) ([]string, error) {
				answers := make([]string, len(questions))
				for i := range questions {
					if !echos[i] {
						answers[i] = pw
					}
				}
				return answers, nil
			}))
	}
	return methods, closer, skipped
}

// passwordAllowed reports whether the password may be offered to s: its
// address is one of Config.PasswordHosts, or in one of their ranges. Any
// API caller can add a host, so the password goes only where the
// master's own config says.
func (p *Pool) passwordAllowed(s hostSpec) bool {
	ip := net.ParseIP(s.host)
	for _, h := range s.set.PasswordHosts {
		if strings.EqualFold(h, s.host) {
			return true
		}
		if _, cidr, err := net.ParseCIDR(h); err == nil && ip != nil && cidr.Contains(ip) {
			return true
		}
		if hip := net.ParseIP(h); hip != nil && ip != nil && hip.Equal(ip) {
			return true
		}
	}
	return false
}

// authHint explains skipped keys after an authentication failure.
func authHint(skipped []string) string {
	if len(skipped) == 0 {
		return ""
	}
	return " (skipped: " + strings.Join(skipped, "; ") + ")"
}

// keyAllowed confines a host's own key file to Config.KeyDirs: an API
// caller naming a host's key must not be able to make the master use any
// file it can read (its TLS key, the machine's SSH host keys) as an
// identity. Symlinks are resolved first. No KeyDirs means no confinement.
func (st *settings) keyAllowed(path string) error {
	if len(st.KeyDirs) == 0 {
		return nil
	}
	real, err := filepath.EvalSymlinks(path)
	if err != nil {
		return fmt.Errorf("key %s: %w", path, err)
	}
	for _, dir := range st.KeyDirs {
		d, err := filepath.EvalSymlinks(dir)
		if err != nil {
			continue
		}
		if rel, err := filepath.Rel(d, real); err == nil && rel != ".." && !strings.HasPrefix(rel, "../") && rel != "." {
			return nil
		}
	}
	return fmt.Errorf("key %s is not under ssh.key_dirs (%s)", path, strings.Join(st.KeyDirs, ", "))
}
