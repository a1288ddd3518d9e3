package master

import (
	"fmt"
	"net"
	"net/url"
	"os"
	"path/filepath"
	"time"

	"github.com/felix-ops/felix/bootstrap"
	"github.com/felix-ops/felix/config"
)

// Config is the master's configuration file (TOML).
type Config struct {
	Listen    string   `toml:"listen"`
	DataDir   string   `toml:"data_dir"`
	CertHosts []string `toml:"cert_hosts"`
	LogLevel  string   `toml:"log_level"`
	Exec      struct {
		DefaultTimeout config.Duration `toml:"default_timeout"`
		MaxTimeout     config.Duration `toml:"max_timeout"`
		MaxParallel    int             `toml:"max_parallel"`
		OutputCap      int             `toml:"output_cap"`
		MaxFileSize    int64           `toml:"max_file_size"`
	} `toml:"exec"`
	Health struct {
		Interval config.Duration `toml:"interval"`
		Timeout  config.Duration `toml:"timeout"`
	} `toml:"health"`
	Callbacks struct {
		Secret  string          `toml:"secret"`
		Allow   []string        `toml:"allow"`
		Timeout config.Duration `toml:"timeout"`
		MaxAge  config.Duration `toml:"max_age"`
	} `toml:"callbacks"`
	Slack struct {
		WebhookURL string `toml:"webhook_url"`
	} `toml:"slack"`
	Retention struct {
		MaxAge  config.Duration `toml:"max_age"`
		MaxJobs int             `toml:"max_jobs"`
	} `toml:"retention"`
	SSH struct {
		KnownHosts  string          `toml:"known_hosts"`
		HostKeys    string          `toml:"host_keys"`
		User        string          `toml:"user"`
		KeyFiles    []string        `toml:"key_files"`
		KeyDirs     []string        `toml:"key_dirs"`
		Agent       bool            `toml:"agent"`
		IdleTimeout config.Duration `toml:"idle_timeout"`
		MaxConns    int             `toml:"max_conns"`
	} `toml:"ssh"`
	Files struct {
		MaxSize      int64           `toml:"max_size"`
		MaxStoreSize int64           `toml:"max_store_size"`
		KeepUnused   config.Duration `toml:"keep_unused"`
		Timeout      config.Duration `toml:"timeout"`
	} `toml:"files"`
	Bootstrap struct {
		MasterURL   string          `toml:"master_url"`
		MinionDir   string          `toml:"minion_dir"`
		Timeout     config.Duration `toml:"timeout"`
		InstallRoot string          `toml:"install_root"`
	} `toml:"bootstrap"`
}

// defaultConfig is written on first run; every key is documented.
const defaultConfig = `# felix master configuration.
# Flags and FELIX_MASTER_* environment variables override what is set here.

# Address of the HTTPS REST API (minions register here, the felix CLI talks here).
listen = ":8443"

# Where the master keeps its certificate and key (master.crt, master.key), the
# SQLite inventory (felix.db), the admin token (admin.token) and its pid file.
# Empty means /var/lib/felix/master for root, else ~/.local/share/felix/master.
data_dir = ""

# Extra host names and IP addresses the master's certificate is valid for, besides
# localhost, 127.0.0.1, ::1, the host name and the listen address. Only read
# when the certificate is first created.
cert_hosts = []

# debug, info, warn or error. Logs go to stderr.
log_level = "info"

[exec]
# Deadline of a command when the request names none; the minion kills the
# command's whole process group when it passes.
default_timeout = "60s"
# Longest deadline a request may ask for.
max_timeout = "24h"
# How many hosts a job runs on at once.
max_parallel = 5000
# Bytes of stdout and of stderr kept per host (the first and last halves).
output_cap = 1048576
# Largest content of a script or file command, in bytes.
max_file_size = 67108864

[health]
# How often the master pings every accepted minion.
interval = "30s"
# How long one ping may take before the minion counts as unreachable.
timeout = "5s"

[callbacks]
# Key of the HMAC-SHA256 signature on every callback (X-Felix-Signature).
# Empty: a random one is made on first start and kept in data_dir/callback.secret.
secret = ""
# Callback hosts allowed although they are loopback, link-local, unspecified
# or the master's own: CIDRs ("127.0.0.0/8") or host[:port] ("hooks.internal:8080").
allow = []
# How long one delivery attempt may take.
timeout = "10s"
# How long a callback is retried (exponential backoff with jitter) before it is dead.
max_age = "24h"

[slack]
# Incoming-webhook URL; one message per finished job. Empty: no Slack.
webhook_url = ""

[retention]
# Finished jobs older than this are deleted with their results.
max_age = "720h"
# At most this many finished jobs are kept (the newest).
max_jobs = 100000

[ssh]
# Agentless hosts and bootstrap. felix's own known_hosts file; empty means
# data_dir/known_hosts.
known_hosts = ""
# "strict": an unknown host key is an error (accept it with felix hosts trust);
# "accept-new": record a new host's key on first use. A changed key is always an error.
host_keys = "strict"
# Login when a host names none.
user = "root"
# Private keys to offer; empty means ~/.ssh/id_ed25519, id_ecdsa and id_rsa.
# Passphrases come from FELIX_SSH_PASSPHRASE; passwords only from FELIX_SSH_PASSWORD.
key_files = []
# Directories a host's own key file (felix hosts add --key, ansible_ssh_private_key_file)
# must be in, so an API caller cannot make the master use any file it can read as an
# identity. Empty means data_dir/keys and ~/.ssh of the user the master runs as.
key_dirs = []
# Offer the keys of the ssh-agent at SSH_AUTH_SOCK.
agent = true
# Pooled connections unused this long are closed.
idle_timeout = "5m"
# At most this many pooled connections.
max_conns = 1000

[files]
# File distribution (felix cp, felix fetch). Content is kept once per sha256
# in data_dir/content: what pushes send and what fetches bring back.
# Largest single file, in bytes (1 GiB).
max_size = 1073741824
# Largest total of the content store, in bytes (10 GiB); an upload that does not
# fit once unused content is collected is refused (507).
max_store_size = 10737418240
# Content no job has used for this long is collected (hourly, and when the store is full).
keep_unused = "168h"
# Per-host deadline of a push or fetch when the request names none.
timeout = "1h"

[bootstrap]
# The master URL written into bootstrapped minions' config; empty means
# https://<this host's name>:<listen port>.
master_url = ""
# Directory holding minion-linux-amd64 and minion-linux-arm64 (make dist);
# empty means data_dir/dist.
minion_dir = ""
# How long one host may take to install, start and register.
timeout = "2m"
# A test and chroot aid: install under this directory on the hosts
# (ROOT/usr/local/bin/felix-minion, ROOT/etc/felix/minion.toml, ...) and
# never touch systemd or the crontab: the minion is started detached and
# the boot entry goes to ROOT/etc/rc.local. Empty: the real paths.
install_root = ""
`

// LoadConfig loads the master's config file, writing the default first if
// there is none.
func LoadConfig(path string) (Config, bool, error) {
	var c Config
	created, err := config.Load(path, defaultConfig, &c)
	return c, created, err
}

// Validate checks the configuration once, after every layer is applied.
func (c *Config) Validate() error {
	if _, _, err := net.SplitHostPort(c.Listen); err != nil {
		return fmt.Errorf("listen %q: want host:port", c.Listen)
	}
	if c.DataDir == "" {
		c.DataDir = config.DefaultDir("data", "master")
	}
	if c.LogLevel == "" {
		c.LogLevel = "info"
	}
	if c.Exec.DefaultTimeout.Duration <= 0 {
		c.Exec.DefaultTimeout.Duration = 60 * time.Second
	}
	if c.Exec.MaxTimeout.Duration <= 0 {
		c.Exec.MaxTimeout.Duration = 24 * time.Hour
	}
	if c.Exec.MaxParallel <= 0 {
		return fmt.Errorf("exec.max_parallel must be positive")
	}
	if c.Exec.OutputCap < 1024 {
		return fmt.Errorf("exec.output_cap must be at least 1024 bytes")
	}
	if c.Health.Interval.Duration <= 0 || c.Health.Timeout.Duration <= 0 {
		return fmt.Errorf("health.interval and health.timeout must be positive")
	}
	if c.Exec.MaxFileSize <= 0 {
		c.Exec.MaxFileSize = 64 << 20
	}
	if c.Files.MaxSize <= 0 {
		c.Files.MaxSize = 1 << 30
	}
	if c.Files.MaxStoreSize <= 0 {
		c.Files.MaxStoreSize = 10 << 30
	}
	if c.Files.MaxSize > c.Files.MaxStoreSize {
		return fmt.Errorf("files.max_size must not be over files.max_store_size")
	}
	if c.Files.KeepUnused.Duration <= 0 {
		c.Files.KeepUnused.Duration = 7 * 24 * time.Hour
	}
	if c.Files.Timeout.Duration <= 0 {
		c.Files.Timeout.Duration = min(time.Hour, c.Exec.MaxTimeout.Duration)
	}
	if c.Files.Timeout.Duration > c.Exec.MaxTimeout.Duration {
		return fmt.Errorf("files.timeout %s is over exec.max_timeout %s", c.Files.Timeout.Duration, c.Exec.MaxTimeout.Duration)
	}
	if c.Callbacks.Timeout.Duration <= 0 {
		c.Callbacks.Timeout.Duration = 10 * time.Second
	}
	if c.Callbacks.MaxAge.Duration <= 0 {
		c.Callbacks.MaxAge.Duration = 24 * time.Hour
	}
	if u := c.Slack.WebhookURL; u != "" {
		if pu, err := url.Parse(u); err != nil || (pu.Scheme != "https" && pu.Scheme != "http") || pu.Host == "" {
			return fmt.Errorf("slack.webhook_url: want an http(s) URL")
		}
	}
	if c.Retention.MaxAge.Duration <= 0 {
		c.Retention.MaxAge.Duration = 30 * 24 * time.Hour
	}
	if c.Retention.MaxJobs <= 0 {
		c.Retention.MaxJobs = 100000
	}
	if c.SSH.KnownHosts == "" {
		c.SSH.KnownHosts = filepath.Join(c.DataDir, "known_hosts")
	}
	switch c.SSH.HostKeys {
	case "":
		c.SSH.HostKeys = "strict"
	case "strict", "accept-new":
	default:
		return fmt.Errorf("ssh.host_keys %q: want strict or accept-new", c.SSH.HostKeys)
	}
	if len(c.SSH.KeyDirs) == 0 {
		c.SSH.KeyDirs = []string{filepath.Join(c.DataDir, "keys")}
		if home, err := os.UserHomeDir(); err == nil {
			c.SSH.KeyDirs = append(c.SSH.KeyDirs, filepath.Join(home, ".ssh"))
		}
	}
	if c.SSH.User == "" {
		c.SSH.User = "root"
	}
	if c.SSH.IdleTimeout.Duration <= 0 {
		c.SSH.IdleTimeout.Duration = 5 * time.Minute
	}
	if c.SSH.MaxConns <= 0 {
		c.SSH.MaxConns = 1000
	}
	if c.Bootstrap.MinionDir == "" {
		c.Bootstrap.MinionDir = filepath.Join(c.DataDir, "dist")
	}
	if c.Bootstrap.Timeout.Duration <= 0 {
		c.Bootstrap.Timeout.Duration = 2 * time.Minute
	}
	if err := bootstrap.ValidInstallRoot(c.Bootstrap.InstallRoot); err != nil {
		return fmt.Errorf("bootstrap.install_root: %w", err)
	}
	if u := c.Bootstrap.MasterURL; u != "" {
		if pu, err := url.Parse(u); err != nil || pu.Scheme != "https" || pu.Host == "" {
			return fmt.Errorf("bootstrap.master_url %q: want https://host:port", u)
		}
	}
	return nil
}
