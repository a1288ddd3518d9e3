package ssh

import "sync"

// noSFTPError says why a host has no usable sftp-server.
type noSFTPError struct{ reason string }

func (e *noSFTPError) Error() string { return "no sftp-server: " + e.reason }

// maxNoSFTP bounds the logins noSFTPCache remembers.
const maxNoSFTP = 4096

// noSFTPCache remembers the logins (user, host, port, key, become) found
// without an sftp-server, for the settings generation in force: a
// Reconfigure (whose connections dial afresh) forgets them all, and so
// does reaching maxNoSFTP entries. The zero value is ready to use.
type noSFTPCache struct {
	mu    sync.Mutex
	gen   uint64
	hosts map[string]bool
}

// cacheKey is s's login under its settings generation; become runs
// another sftp-server (under sudo, as root or the become user).
func (c *noSFTPCache) cacheKey(s hostSpec) string {
	if s.become {
		return s.key + "\x00become " + s.becomeUser
	}
	return s.key
}

// has reports whether s was found without an sftp-server.
func (c *noSFTPCache) has(s hostSpec) bool {
	c.mu.Lock()
	defer c.mu.Unlock()
	return c.gen == s.set.gen && c.hosts[c.cacheKey(s)]
}

// add records s; it reports whether s is new (its reason is to be told).
func (c *noSFTPCache) add(s hostSpec) bool {
	c.mu.Lock()
	defer c.mu.Unlock()
	if c.gen != s.set.gen {
		if s.set.gen < c.gen {
			return true // an operation begun under older settings
		}
		c.gen, c.hosts = s.set.gen, nil
	}
	if c.hosts == nil || len(c.hosts) >= maxNoSFTP {
		c.hosts = make(map[string]bool)
	}
	k := c.cacheKey(s)
	if c.hosts[k] {
		return false
	}
	c.hosts[k] = true
	return true
}
