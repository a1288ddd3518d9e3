package minion

import (
	"fmt"
	"net"
	"net/url"
	"os"
	"path/filepath"

	"github.com/felix-ops/felix/config"
	"github.com/felix-ops/felix/model"
	"github.com/felix-ops/felix/pki"
)

// Config is the minion's configuration file (TOML).
type Config struct {
	Master            string `toml:"master"`
	MasterFingerprint string `toml:"master_fingerprint"`
	JoinToken         string `toml:"join_token"`
	ID                string `toml:"id"`
	Listen            string `toml:"listen"`
	Advertise         string `toml:"advertise"`
	DataDir           string `toml:"data_dir"`
	LogLevel          string `toml:"log_level"`
	// FileRoots are the directories the master may put files in or fetch
	// them from; empty means any absolute path.
	FileRoots []string `toml:"file_roots"`
}

const defaultConfig = `# felix minion configuration.
# Flags and FELIX_MINION_* environment variables override what is set here.

# URL of the master's API, e.g. "https://master.example.net:8443".
master = ""

# Fingerprint of the master's certificate ("sha256:..."; master start prints it).
# Empty: trust the first master certificate seen and refuse any other later
# (the one seen is kept in data_dir/master.fingerprint).
master_fingerprint = ""

# Join token from "master token join"; only needed for the first registration.
join_token = ""

# This minion's id; empty means the host name.
id = ""

# Address of the gRPC server the master dials (mutual TLS).
listen = ":4510"

# host:port the master should dial, when it differs from listen (NAT, several
# addresses). Empty: listen's host, or the address the master sees us at.
advertise = ""

# Where the minion keeps its key and certificate (minion.key, minion.crt), the
# pinned master fingerprint and its pid file. Empty means /var/lib/felix/minion
# for root, else ~/.local/share/felix/minion.
data_dir = ""

# debug, info, warn or error. Logs go to stderr.
log_level = "info"

# Directories the master may put files in (felix cp) or fetch them from,
# e.g. ["/etc/nginx", "/srv"]. Symlinks in them are resolved. Empty means
# any absolute path.
file_roots = []
`

// LoadConfig loads the minion's config file, writing the default first if
// there is none.
func LoadConfig(path string) (Config, bool, error) {
	var c Config
	created, err := config.Load(path, defaultConfig, &c)
	return c, created, err
}

// Validate checks the configuration after every layer is applied and fills
// in defaults.
func (c *Config) Validate() error {
	if c.Master != "" {
		if u, err := url.Parse(c.Master); err != nil || u.Scheme != "https" || u.Host == "" {
			return fmt.Errorf("master %q: want https://host:port", c.Master)
		}
	}
	if c.MasterFingerprint != "" {
		fp, err := pki.ParseFingerprint(c.MasterFingerprint)
		if err != nil {
			return err
		}
		c.MasterFingerprint = fp
	}
	if c.ID == "" {
		h, err := os.Hostname()
		if err != nil {
			return fmt.Errorf("id not set and host name unknown: %w", err)
		}
		c.ID = h
	}
	if err := model.ValidID(c.ID); err != nil {
		return fmt.Errorf("%w (set id or --id)", err)
	}
	if _, _, err := net.SplitHostPort(c.Listen); err != nil {
		return fmt.Errorf("listen %q: want host:port", c.Listen)
	}
	if c.Advertise != "" {
		if _, _, err := net.SplitHostPort(c.Advertise); err != nil {
			return fmt.Errorf("advertise %q: want host:port", c.Advertise)
		}
	}
	for _, r := range c.FileRoots {
		if !filepath.IsAbs(r) || filepath.Clean(r) != r {
			return fmt.Errorf("file_roots: %q is not an absolute, clean path", r)
		}
	}
	if c.DataDir == "" {
		c.DataDir = config.DefaultDir("data", "minion")
	}
	if c.LogLevel == "" {
		c.LogLevel = "info"
	}
	return nil
}
