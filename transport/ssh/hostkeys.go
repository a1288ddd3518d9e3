package ssh

import (
	"bufio"
	"bytes"
	"context"
	"crypto/ed25519"
	"crypto/hmac"
	"crypto/sha1"
	"encoding/base64"
	"errors"
	"fmt"
	"net"
	"os"
	"path/filepath"
	"slices"
	"strconv"
	"strings"
	"sync"
	"syscall"
	"time"

	"golang.org/x/crypto/ssh"
	"golang.org/x/crypto/ssh/knownhosts"

	"github.com/felix-ops/felix/exec"
	"github.com/felix-ops/felix/model"
)

// hostKeyError is a host-key failure. It is both ErrHostKey and
// exec.ErrUnreachable: nothing was sent to a host that failed the check.
type hostKeyError struct{ msg string }

func (e *hostKeyError) Error() string { return e.msg }

// Is makes errors.Is match ErrHostKey and exec.ErrUnreachable.
func (e *hostKeyError) Is(target error) bool {
	return target == ErrHostKey || target == exec.ErrUnreachable
}

// knownHosts is felix's known_hosts file. The parsed file is cached and
// re-read when the file changes on disk (felix hosts trust in another
// process); keys this process appends are kept beside the parsed file so
// accepting many new hosts does not re-read it each time.
type knownHosts struct {
	path string

	mu    sync.Mutex                 // protects the fields below and serialises writes to the file
	cb    ssh.HostKeyCallback        // the parsed file
	stamp fileStamp                  // of the file when cb was parsed
	added map[string][]ssh.PublicKey // appended by this process since, by normalized address
}

// fileStamp identifies a version of a file.
type fileStamp struct {
	size  int64
	mtime time.Time
	ino   uint64
}

func stampOf(fi os.FileInfo) fileStamp {
	st := fileStamp{size: fi.Size(), mtime: fi.ModTime()}
	if sys, ok := fi.Sys().(*syscall.Stat_t); ok {
		st.ino = sys.Ino
	}
	return st
}

// openKnownHosts creates path (0600, its directory 0700) when missing and
// parses it.
func openKnownHosts(path string) (*knownHosts, error) {
	if path == "" {
		return nil, errors.New("no known_hosts file configured")
	}
	if err := os.MkdirAll(filepath.Dir(path), 0o700); err != nil {
		return nil, fmt.Errorf("create known_hosts directory: %w", err)
	}
	f, err := os.OpenFile(path, os.O_RDONLY|os.O_CREATE, 0o600)
	if err != nil {
		return nil, fmt.Errorf("open known_hosts: %w", err)
	}
	f.Close()
	k := &knownHosts{path: path}
	k.mu.Lock()
	defer k.mu.Unlock()
	if _, err := k.loadLocked(); err != nil {
		return nil, err
	}
	return k, nil
}

// loadLocked re-parses the file if it changed since it was last parsed.
func (k *knownHosts) loadLocked() (ssh.HostKeyCallback, error) {
	fi, err := os.Stat(k.path)
	if err != nil {
		return nil, fmt.Errorf("read known_hosts: %w", err)
	}
	st := stampOf(fi)
	if k.cb != nil && st == k.stamp {
		return k.cb, nil
	}
	cb, err := knownhosts.New(k.path)
	if err != nil {
		return nil, fmt.Errorf("read known_hosts: %w", err)
	}
	k.cb, k.stamp, k.added = cb, st, nil
	return cb, nil
}

// lookup returns the keys recorded for addr (host:port) and whether key is
// among them.
func (k *knownHosts) lookupLocked(addr string, remote net.Addr, key ssh.PublicKey) (known []ssh.PublicKey, ok bool, err error) {
	cb, err := k.loadLocked()
	if err != nil {
		return nil, false, err
	}
	if remote == nil {
		remote = &net.TCPAddr{IP: net.IPv4(127, 0, 0, 1), Port: 22}
	}
	for _, a := range k.added[knownhosts.Normalize(addr)] {
		if keysEqual(a, key) {
			return nil, true, nil
		}
		known = append(known, a)
	}
	err = cb(addr, remote, key)
	var ke *knownhosts.KeyError
	var re *knownhosts.RevokedError
	switch {
	case err == nil:
		return nil, true, nil
	case errors.As(err, &re):
		return nil, false, &hostKeyError{fmt.Sprintf("host key of %s (%s) is revoked in %s", addr, fingerprint(key), k.path)}
	case errors.As(err, &ke):
		for _, w := range ke.Want {
			known = append(known, w.Key)
		}
		return known, false, nil
	}
	return nil, false, fmt.Errorf("check host key of %s: %w", addr, err)
}

// check is the host-key callback's work for addr under policy.
func (k *knownHosts) check(addr string, remote net.Addr, key ssh.PublicKey, policy string) error {
	k.mu.Lock()
	defer k.mu.Unlock()
	known, ok, err := k.lookupLocked(addr, remote, key)
	if err != nil {
		var hk *hostKeyError
		if errors.As(err, &hk) {
			return err
		}
		return fmt.Errorf("%w: %w", err, exec.ErrUnreachable)
	}
	if ok {
		return nil
	}
	host := trustArg(addr)
	if len(known) > 0 {
		return &hostKeyError{fmt.Sprintf("HOST KEY CHANGED for %s: it presents %s, but %s records %s; "+
			"someone may be intercepting the connection. If the change is expected, check the new key and trust it with: felix hosts trust %s %s",
			addr, fingerprint(key), k.path, fingerprint(known[0]), host, ssh.FingerprintSHA256(key))}
	}
	if policy != PolicyAcceptNew {
		return &hostKeyError{fmt.Sprintf("host key of %s is unknown: it presents %s; check it and trust it with: felix hosts trust %s %s",
			addr, fingerprint(key), host, ssh.FingerprintSHA256(key))}
	}
	if err := k.appendLocked(addr, key); err != nil {
		return fmt.Errorf("record host key of %s: %w: %w", addr, err, exec.ErrUnreachable)
	}
	return nil
}

// appendLocked appends a line for addr and key to the file.
func (k *knownHosts) appendLocked(addr string, key ssh.PublicKey) error {
	f, err := os.OpenFile(k.path, os.O_RDWR|os.O_APPEND, 0o600)
	if err != nil {
		return err
	}
	line := knownhosts.Line([]string{knownhosts.Normalize(addr)}, key) + "\n"
	// Start on a line of its own if the file does not end with a newline.
	if fi, err := f.Stat(); err == nil && fi.Size() > 0 {
		last := make([]byte, 1)
		if _, err := f.ReadAt(last, fi.Size()-1); err == nil && last[0] != '\n' {
			line = "\n" + line
		}
	}
	if _, err := f.WriteString(line); err != nil {
		f.Close()
		return err
	}
	if err := f.Close(); err != nil {
		return err
	}
	// Our own append needs no re-read: remember the key beside the parsed
	// file and the file's new stamp.
	if fi, err := os.Stat(k.path); err == nil {
		k.stamp = stampOf(fi)
	}
	if k.added == nil {
		k.added = make(map[string][]ssh.PublicKey)
	}
	n := knownhosts.Normalize(addr)
	k.added[n] = append(k.added[n], key)
	return nil
}

// replace records key as the only key of addr: lines naming exactly addr
// lose that name (and go when they name nothing else), then a line for
// addr and key is appended. The file is rewritten atomically.
func (k *knownHosts) replace(addr string, key ssh.PublicKey) error {
	k.mu.Lock()
	defer k.mu.Unlock()
	if _, err := k.loadLocked(); err != nil {
		return err
	}
	old, err := os.ReadFile(k.path)
	if err != nil {
		return fmt.Errorf("read known_hosts: %w", err)
	}
	norm := knownhosts.Normalize(addr)
	var out bytes.Buffer
	sc := bufio.NewScanner(bytes.NewReader(old))
	sc.Buffer(make([]byte, 0, 64<<10), 1<<20)
	for sc.Scan() {
		out.WriteString(dropHost(sc.Text(), norm))
	}
	if err := sc.Err(); err != nil {
		return fmt.Errorf("read known_hosts: %w", err)
	}
	out.WriteString(knownhosts.Line([]string{norm}, key) + "\n")

	tmp, err := os.CreateTemp(filepath.Dir(k.path), ".known_hosts.tmp-*")
	if err != nil {
		return fmt.Errorf("write known_hosts: %w", err)
	}
	defer os.Remove(tmp.Name())
	if _, err := tmp.Write(out.Bytes()); err != nil {
		tmp.Close()
		return fmt.Errorf("write known_hosts: %w", err)
	}
	if err := tmp.Chmod(0o600); err != nil {
		tmp.Close()
		return fmt.Errorf("write known_hosts: %w", err)
	}
	if err := tmp.Close(); err != nil {
		return fmt.Errorf("write known_hosts: %w", err)
	}
	if err := os.Rename(tmp.Name(), k.path); err != nil {
		return fmt.Errorf("write known_hosts: %w", err)
	}
	k.cb = nil // re-read on next use
	_, ok, err := k.lookupLocked(addr, nil, key)
	if err != nil {
		return err
	}
	if !ok {
		return fmt.Errorf("trust %s: %s still holds another key for it (a wildcard or marker line); edit it by hand", addr, k.path)
	}
	return nil
}

// dropHost returns line (with its newline) without the host pattern norm,
// or "" when norm was its only pattern. Comments, markers and lines that do
// not name norm are kept as they are.
func dropHost(line, norm string) string {
	trimmed := strings.TrimSpace(line)
	if trimmed == "" || trimmed[0] == '#' || trimmed[0] == '@' {
		return line + "\n"
	}
	hosts, rest, ok := strings.Cut(trimmed, " ")
	if !ok {
		return line + "\n"
	}
	var keep []string
	dropped := false
	for _, h := range strings.Split(hosts, ",") {
		if h == norm || hashedMatch(h, norm) {
			dropped = true
			continue
		}
		keep = append(keep, h)
	}
	switch {
	case !dropped:
		return line + "\n"
	case len(keep) == 0:
		return ""
	}
	return strings.Join(keep, ",") + " " + rest + "\n"
}

// hashedMatch reports whether pattern is a hashed host name (|1|salt|hash)
// of norm.
func hashedMatch(pattern, norm string) bool {
	parts := strings.Split(pattern, "|")
	if len(parts) != 4 || parts[0] != "" || parts[1] != "1" {
		return false
	}
	salt, err1 := base64.StdEncoding.DecodeString(parts[2])
	want, err2 := base64.StdEncoding.DecodeString(parts[3])
	if err1 != nil || err2 != nil {
		return false
	}
	mac := hmac.New(sha1.New, salt)
	mac.Write([]byte(norm))
	return hmac.Equal(mac.Sum(nil), want)
}

// probeKey is a key no host has: checking it against the file lists the
// keys recorded for an address.
var probeKey = func() ssh.PublicKey {
	pub, _, err := ed25519.GenerateKey(nil)
	if err != nil {
		panic(err)
	}
	k, err := ssh.NewPublicKey(pub)
	if err != nil {
		panic(err)
	}
	return k
}()

// defaultHostKeyAlgorithms are asked of a host with no recorded key, in
// OpenSSH's order of preference, so the key felix reports (and records) is
// the one `ssh` would show.
var defaultHostKeyAlgorithms = []string{
	ssh.KeyAlgoED25519,
	ssh.KeyAlgoECDSA256, ssh.KeyAlgoECDSA384, ssh.KeyAlgoECDSA521,
	ssh.KeyAlgoRSASHA512, ssh.KeyAlgoRSASHA256, ssh.KeyAlgoRSA,
}

// algorithms returns the host-key algorithms to negotiate with addr: those
// of the keys recorded for it, so a host known by one key type is not
// asked for another (which would look like a changed key), and known
// reports that there are such keys; for an unknown host, the defaults.
func (k *knownHosts) algorithms(addr string) (algos []string, known bool) {
	k.mu.Lock()
	keys, _, err := k.lookupLocked(addr, nil, probeKey)
	k.mu.Unlock()
	if err != nil || len(keys) == 0 {
		return defaultHostKeyAlgorithms, false
	}
	return keyAlgorithms(keys), true
}

// keyAlgorithms returns the host-key algorithms that present keys of the
// types of keys, in the order of defaultHostKeyAlgorithms, then any other
// types.
func keyAlgorithms(keys []ssh.PublicKey) []string {
	types := make(map[string]bool)
	for _, k := range keys {
		types[k.Type()] = true
	}
	var algos, others []string
	for _, a := range defaultHostKeyAlgorithms {
		t := a
		if a == ssh.KeyAlgoRSASHA512 || a == ssh.KeyAlgoRSASHA256 {
			t = ssh.KeyAlgoRSA // RSA keys, signed with SHA-2
		}
		if types[t] {
			algos = append(algos, a)
		}
	}
	for t := range types {
		if !slices.Contains(defaultHostKeyAlgorithms, t) {
			others = append(others, t)
		}
	}
	slices.Sort(others)
	return append(algos, others...)
}

// keysEqual reports whether two public keys are the same.
func keysEqual(a, b ssh.PublicKey) bool {
	return bytes.Equal(a.Marshal(), b.Marshal())
}

// fingerprint describes a key for messages: type and SHA256 fingerprint.
func fingerprint(k ssh.PublicKey) string {
	return k.Type() + " key " + ssh.FingerprintSHA256(k)
}

// trustArg is the HOST[:PORT] argument of `felix hosts trust` for addr:
// the port is left out when it is 22.
func trustArg(addr string) string {
	host, port, err := net.SplitHostPort(addr)
	if err != nil {
		return addr
	}
	if port == strconv.Itoa(22) {
		return host
	}
	return addr
}

// HostKey returns the host key fingerprint (SHA256:...) a host presents,
// without authenticating; `felix hosts trust` uses it.
func (p *Pool) HostKey(ctx context.Context, t model.Target) (string, error) {
	s, err := p.spec(t)
	if err != nil {
		return "", err
	}
	key, err := p.presentedKey(ctx, s)
	if err != nil {
		return "", err
	}
	return ssh.FingerprintSHA256(key), nil
}

// Trust records the host's current key in the known_hosts file after
// checking it has the fingerprint the operator confirmed. A key recorded
// for the same address before (a host that was re-installed) is replaced.
func (p *Pool) Trust(ctx context.Context, t model.Target, fingerprint string) error {
	s, err := p.spec(t)
	if err != nil {
		return err
	}
	if !strings.HasPrefix(fingerprint, "SHA256:") {
		return fmt.Errorf("trust %s: fingerprint %q: want SHA256:...: %w", s.addr, fingerprint, ErrHostKey)
	}
	key, err := p.presentedKey(ctx, s)
	if err != nil {
		return err
	}
	if got := ssh.FingerprintSHA256(key); got != fingerprint {
		return &hostKeyError{fmt.Sprintf("trust %s: it presents %s %s, not %s; nothing recorded", s.addr, key.Type(), got, fingerprint)}
	}
	if err := s.set.kh.replace(s.addr, key); err != nil {
		return fmt.Errorf("trust %s: %w", s.addr, err)
	}
	return nil
}

// errGotKey ends a handshake once the host key is known.
var errGotKey = errors.New("host key received")

// presentedKey dials s and returns its host key, without authenticating.
func (p *Pool) presentedKey(ctx context.Context, s hostSpec) (ssh.PublicKey, error) {
	// Ask for the kind of key recorded, like a connection would; failing
	// that (the host no longer has such a key), for any.
	algos, known := s.set.kh.algorithms(s.addr)
	key, err := p.fetchKey(ctx, s, algos)
	if err != nil && known && ctx.Err() == nil {
		key, err = p.fetchKey(ctx, s, defaultHostKeyAlgorithms)
	}
	return key, err
}

func (p *Pool) fetchKey(ctx context.Context, s hostSpec, algos []string) (ssh.PublicKey, error) {
	parent := ctx
	ctx, cancel := context.WithTimeout(ctx, s.set.ConnectTimeout)
	defer cancel()
	nc, via, err := p.dialTCP(ctx, parent, s, "get the host key of")
	if err != nil {
		if via == nil && len(s.jump) == 0 {
			err = unreachable(s, "get the host key of", err)
		}
		return nil, err
	}
	defer nc.Close()
	if via != nil {
		defer p.releaseTunnel(via)
	}
	stop := context.AfterFunc(ctx, func() {
		if nc.SetDeadline(time.Unix(1, 0)) != nil {
			nc.Close()
		}
	})
	defer stop()
	var key ssh.PublicKey
	cfg := &ssh.ClientConfig{
		User: s.user,
		HostKeyCallback: func(_ string, _ net.Addr, k ssh.PublicKey) error {
			key = k
			return errGotKey
		},
		HostKeyAlgorithms: algos,
		ClientVersion:     "SSH-2.0-felix",
	}
	_, _, _, err = ssh.NewClientConn(nc, s.addr, cfg)
	if key == nil {
		return nil, unreachable(s, "get the host key of", err)
	}
	return key, nil
}
