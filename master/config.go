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
	"github.com/felix-ops/felix/model"
	"github.com/felix-ops/felix/transport/ssh"
)

// Config is the master's configuration file (TOML). Its tags give each
// key's default, environment variable, flag and the comment of the
// first-run file (see package config); computeDefaults works out the rest.
type Config struct {
	Listen string `toml:"listen" default:":8443" zero:"error" env:"FELIX_MASTER_LISTEN" flag:"listen" doc:"Address of the HTTPS REST API (minions register here, the felix CLI talks here)."`

	DataDir string `toml:"data_dir" zero:"computed" env:"FELIX_MASTER_DATA_DIR" flag:"data-dir" doc:"Where the master keeps its certificate and key (master.crt, master.key), the SQLite inventory (felix.db), the admin token (admin.token) and its pid file. Empty means /var/lib/felix/master for root, else ~/.local/share/felix/master."`

	CertHosts []string `toml:"cert_hosts" doc:"Extra host names and IP addresses the master's certificate is valid for, besides localhost, 127.0.0.1, ::1, the host name and the listen address. Only read when the certificate is first created."`

	LogLevel string `toml:"log_level" default:"info" env:"FELIX_MASTER_LOG_LEVEL" flag:"log-level" doc:"debug, info, warn or error. Logs go to stderr."`

	LogFormat string `toml:"log_format" default:"text" env:"FELIX_MASTER_LOG_FORMAT" flag:"log-format" doc:"text (key=value pairs) or json (one JSON object a line, for a log shipper)."`

	TrustedProxies []string `toml:"trusted_proxies" doc:"Reverse proxies (IP addresses or CIDRs) whose X-Forwarded-For and X-Real-IP name the client in logs and rate limits. Empty: none is trusted, and the connection's own address is the client's."`

	DebugListen string `toml:"debug_listen" env:"FELIX_MASTER_DEBUG_LISTEN" doc:"Address of a profiling listener (Go's net/http/pprof: /debug/pprof/heap, goroutine, profile, ...), on a loopback address only, such as 127.0.0.1:6060. Empty: off."`

	MetricsListen string `toml:"metrics_listen" env:"FELIX_MASTER_METRICS_LISTEN" doc:"Address of a plain-HTTP listener serving only /metrics (Prometheus text format) without a token, for a scraper; a bare \":9100\" listens on 127.0.0.1. Empty: /metrics is served on the API's address, to any token without a scope."`

	MemoryLimit int64 `toml:"memory_limit" default:"0" zero:"computed" env:"FELIX_MASTER_MEMORY_LIMIT" doc:"Soft limit of the master's memory, in bytes (Go's runtime/debug.SetMemoryLimit): near it the garbage collector runs sooner and gives freed memory back to the system, so the master's size follows what it holds, not the garbage of a large output (it is not a cap: what is in use stays). 0: GOMEMLIMIT when set in the environment, else 4 x exec.output_memory + 64 MiB (320 MiB by default). The limit the master sets (not GOMEMLIMIT, kept as given) is raised, checked every second, to 1.5 x the live heap plus the goroutine stacks when that is more (a big fleet's connections alone can be), so the collector never runs without end. -1: no limit. A reload (SIGHUP) applies it."`

	Exec struct {
		DefaultTimeout config.Duration `toml:"default_timeout" default:"60s" doc:"Deadline of a command when the request names none; the minion kills the command's whole process group when it passes."`
		MaxTimeout     config.Duration `toml:"max_timeout" default:"24h" doc:"Longest deadline a request may ask for."`
		MaxParallel    int             `toml:"max_parallel" default:"5000" zero:"error" doc:"How many hosts a job runs on at once."`
		OutputCap      int             `toml:"output_cap" default:"1048576" zero:"error" doc:"Bytes of stdout and of stderr kept per host (the first and last halves)."`
		OutputMemory   int64           `toml:"output_memory" default:"67108864" doc:"Bytes of output all running hosts together keep in memory; past it a host's output goes to an unlinked file under data_dir/spool (the same head and tail kept), so memory does not grow with hosts x output. A quarter of it (read at start) bounds the output all minions together send ahead of the master's reading (the rest waits on the minions, whose commands block on a full pipe as at a slow terminal)."`
		MaxFileSize    int64           `toml:"max_file_size" default:"67108864" doc:"Largest content of a script or file command, in bytes."`
		IdleTimeout    config.Duration `toml:"idle_timeout" default:"0s" zero:"off" env:"FELIX_MASTER_EXEC_IDLE_TIMEOUT" doc:"When set, a minion's connection no call has used for this long is closed and health checks probe with a handshake instead of holding a connection: an open idle connection costs the master about 100 KiB, a closed one nothing, but the next command dials again (a TLS handshake, before the command is sent), which makes the first command on thousands of idle minions slow. 0 (the default): connections stay open and health keeps them warm."`
	} `toml:"exec"`

	Health struct {
		Interval  config.Duration `toml:"interval" default:"30s" zero:"error" doc:"How often the master checks every accepted minion: a ping over its connection when one is open, else a probe that completes the mutual-TLS handshake and hangs up (no connection kept for health)."`
		Timeout   config.Duration `toml:"timeout" default:"5s" zero:"error" doc:"How long one ping or probe may take before the minion counts as unreachable."`
		LostAfter config.Duration `toml:"lost_after" default:"6s" zero:"off" doc:"While a command runs, a minion that sends no heartbeat (asked every third of this, at most 2 s) for this long and then does not answer a ping within 3 s ends its host lost. 0: no heartbeats (keepalive alone, 30-40 s)."`
	} `toml:"health"`

	Callbacks struct {
		Secret  string          `toml:"secret" zero:"computed" doc:"Key of the HMAC-SHA256 signature on every callback (X-Felix-Signature). Empty: a random one is made on first start and kept in data_dir/callback.secret."`
		Allow   []string        `toml:"allow" doc:"Callback hosts allowed although they are loopback, link-local, unspecified or the master's own: CIDRs (\"127.0.0.0/8\") or host[:port] (\"hooks.internal:8080\")."`
		Timeout config.Duration `toml:"timeout" default:"10s" doc:"How long one delivery attempt may take."`
		MaxAge  config.Duration `toml:"max_age" default:"24h" doc:"How long a callback is retried (exponential backoff with jitter) before it is dead."`
	} `toml:"callbacks"`

	Slack struct {
		WebhookURL string `toml:"webhook_url" doc:"Incoming-webhook URL; one message per finished job. Empty: no Slack."`
	} `toml:"slack"`

	Limits struct {
		AuthFailuresPerMinute int `toml:"auth_failures_per_minute" default:"10" zero:"off" doc:"Failed authentications (bad API or join tokens) one source address may make a minute once auth_failure_burst is spent; then it gets 429 with Retry-After before its token is looked at. 0: no limit."`
		AuthFailureBurst      int `toml:"auth_failure_burst" default:"30" zero:"off" doc:"Failed authentications one source may make at once."`
		TokenRequestsPerSec   int `toml:"token_requests_per_second" default:"200" zero:"off" doc:"Requests one API token may make a second once token_burst is spent (429 with Retry-After past it). 0: no limit."`
		TokenBurst            int `toml:"token_burst" default:"1000" zero:"off" doc:"Requests one API token may make at once."`
		RegistrationsInFlight int `toml:"registrations_in_flight" default:"100" zero:"off" doc:"Minion registrations handled at once; past it a registration gets 429 with a Retry-After of 1 to 5 s, which minions honour, so a fleet that reconnects together is spread out. 0: no limit."`
	} `toml:"limits"`

	Retention struct {
		MaxAge  config.Duration `toml:"max_age" default:"720h" doc:"Finished jobs older than this are deleted with their results."`
		MaxJobs int             `toml:"max_jobs" default:"100000" doc:"At most this many finished jobs are kept (the newest)."`
	} `toml:"retention"`

	SSH struct {
		KnownHosts     string          `toml:"known_hosts" zero:"computed" doc:"felix's own known_hosts file; empty means data_dir/known_hosts."`
		HostKeys       string          `toml:"host_keys" default:"strict" doc:"\"strict\": an unknown host key is an error (accept it with felix hosts trust); \"accept-new\": record a new host's key on first use. A changed key is always an error."`
		User           string          `toml:"user" default:"root" doc:"Login when a host names none."`
		KeyFiles       []string        `toml:"key_files" doc:"Private keys to offer; empty means ~/.ssh/id_ed25519, id_ecdsa and id_rsa. Passphrases come from FELIX_SSH_PASSPHRASE; passwords only from FELIX_SSH_PASSWORD."`
		PasswordHosts  []string        `toml:"password_hosts" doc:"The only hosts FELIX_SSH_PASSWORD is offered to: host names or IP addresses as the hosts name them, or CIDR ranges (\"10.0.0.0/24\"), matched on the address dialled. Empty: the password goes to no host (any API caller can add a host; it must not be able to collect the password)."`
		KeyDirs        []string        `toml:"key_dirs" zero:"computed" doc:"Directories a host's own key file (felix hosts add --key, ansible_ssh_private_key_file) must be in, so an API caller cannot make the master use any file it can read as an identity. Empty means data_dir/keys and ~/.ssh of the user the master runs as."`
		Agent          bool            `toml:"agent" default:"true" doc:"Offer the keys of the ssh-agent at SSH_AUTH_SOCK."`
		IdleTimeout    config.Duration `toml:"idle_timeout" default:"5m" doc:"Pooled connections unused this long are closed."`
		MaxConns       int             `toml:"max_conns" default:"1000" doc:"At most this many pooled connections."`
		ConnectTimeout config.Duration `toml:"connect_timeout" default:"10s" doc:"How long dialling a host and the SSH handshake may take (1s to 5m); also how long a session request may go unanswered before the connection is dropped."`
		RemoteTmp      string          `toml:"remote_tmp" doc:"Where script and file commands are staged on hosts that name no remote_tmp of their own (like Ansible's remote_tmp): an absolute path, or ~/DIR in the login user's home; made 0700 when missing. Empty means /tmp. When it cannot execute (mounted noexec), /var/tmp and then ~/.felix/tmp are tried."`
		FactsTTL       config.Duration `toml:"facts_ttl" default:"1h" doc:"How long facts gathered from an agentless host select it in key=value targets (os=debian); older or missing facts are gathered again first (felix hosts facts -t ... does it at once). 1s to 720h."`
		Jump           []string        `toml:"jump" doc:"Jump hosts (bastions) per group: \"LABEL=GLOB JUMPHOSTS\" each, JUMPHOSTS in OpenSSH's ProxyJump syntax, e.g. [\"group=lab bastion1,ops@bastion2:2222\"]. The first rule matching a host's labels wins; a host's own proxy_jump (\"none\" for a direct connection) wins over every rule. Each hop's host key must be in known_hosts like any host's."`
		UseSSHConfig   bool            `toml:"use_ssh_config" doc:"Read an OpenSSH client config (ssh_config) for what hosts leave unset: HostName, User, Port, IdentityFile, ProxyJump. An inventory host's address may be an alias of it. Include, Match and ProxyCommand are not supported."`
		SSHConfig      string          `toml:"ssh_config" zero:"computed" doc:"The ssh_config file read when use_ssh_config is true; empty means ~/.ssh/config of the user the master runs as."`
	} `toml:"ssh" doc:"Agentless hosts and bootstrap."`

	Files struct {
		MaxSize      int64           `toml:"max_size" default:"1073741824" doc:"Largest single file, in bytes (1 GiB)."`
		MaxStoreSize int64           `toml:"max_store_size" default:"10737418240" doc:"Largest total of the content store, in bytes (10 GiB); an upload that does not fit once unused content is collected is refused (507)."`
		KeepUnused   config.Duration `toml:"keep_unused" default:"168h" doc:"Content no job has used for this long is collected (hourly, and when the store is full)."`
		Timeout      config.Duration `toml:"timeout" default:"1h" zero:"computed" doc:"Per-host deadline of a push or fetch when the request names none; unset, at most exec.max_timeout."`
	} `toml:"files" doc:"File distribution (felix cp, felix fetch). Content is kept once per sha256 in data_dir/content: what pushes send and what fetches bring back."`

	Bootstrap struct {
		MasterURL   string          `toml:"master_url" zero:"computed" doc:"The master URL written into bootstrapped minions' config. Empty: with listen on all addresses, https://<the address the master's SSH connection to the host comes from>:<listen port>, per host; else https://<listen address, or this host's name for loopback>:<listen port>. Either way each host first checks it can connect to it."`
		MinionDir   string          `toml:"minion_dir" zero:"computed" doc:"Directory holding minion-linux-amd64 and minion-linux-arm64 (make dist); empty means data_dir/dist."`
		Timeout     config.Duration `toml:"timeout" default:"2m" doc:"How long one host may take to install, start and register."`
		InstallRoot string          `toml:"install_root" doc:"A test and chroot aid: install under this directory on the hosts (ROOT/usr/local/bin/felix-minion, ROOT/etc/felix/minion.toml, ...) and never touch systemd or the crontab: the minion is started detached and the boot entry goes to ROOT/etc/rc.local. Empty: the real paths."`
	} `toml:"bootstrap"`
}

// defaultConfig is written on first run: every key at its default, with
// its comment.
var defaultConfig = config.Template(configHeader, Config{})

// LoadConfig loads the master's config file, writing the default first if
// there is none.
func LoadConfig(path string) (Config, bool, error) {
	var c Config
	created, err := config.Load(path, defaultConfig, &c)
	return c, created, err
}

// Validate checks the configuration once, after every layer is applied:
// unset keys take their defaults (config.FillZero, then computeDefaults).
func (c *Config) Validate() error {
	config.FillZero(c)
	c.computeDefaults()
	if _, _, err := net.SplitHostPort(c.Listen); err != nil {
		return fmt.Errorf("listen %q: want host:port", c.Listen)
	}
	if err := config.ValidLogLevel(c.LogLevel); err != nil {
		return err
	}
	if err := config.ValidLogFormat(c.LogFormat); err != nil {
		return err
	}
	if c.DebugListen != "" {
		host, _, err := net.SplitHostPort(c.DebugListen)
		if ip := net.ParseIP(host); err != nil || ip == nil || !ip.IsLoopback() {
			return fmt.Errorf("debug_listen %q: want a loopback address and port such as 127.0.0.1:6060 (profiles show the master's internals)", c.DebugListen)
		}
	}
	if c.MetricsListen != "" {
		host, port, err := net.SplitHostPort(c.MetricsListen)
		if err != nil || port == "" {
			return fmt.Errorf("metrics_listen %q: want host:port such as 127.0.0.1:9100", c.MetricsListen)
		}
		if host == "" {
			c.MetricsListen = net.JoinHostPort("127.0.0.1", port)
		}
	}
	if c.Exec.MaxParallel <= 0 {
		return fmt.Errorf("exec.max_parallel must be positive")
	}
	if c.MemoryLimit < -1 {
		return fmt.Errorf("memory_limit %d: want bytes, 0 (automatic) or -1 (no limit)", c.MemoryLimit)
	}
	if c.Exec.OutputCap < 1024 {
		return fmt.Errorf("exec.output_cap must be at least 1024 bytes")
	}
	if c.Limits.AuthFailuresPerMinute < 0 || c.Limits.AuthFailureBurst < 0 || c.Limits.TokenRequestsPerSec < 0 || c.Limits.TokenBurst < 0 ||
		c.Limits.RegistrationsInFlight < 0 {
		return fmt.Errorf("limits: want 0 (no limit) or more")
	}
	for _, h := range c.SSH.PasswordHosts {
		if _, _, err := net.ParseCIDR(h); err != nil && model.ValidHost(h) != nil {
			return fmt.Errorf("ssh.password_hosts: %q is neither a host name, an IP address nor a CIDR range", h)
		}
	}
	for _, p := range c.TrustedProxies {
		if net.ParseIP(p) == nil {
			if _, _, err := net.ParseCIDR(p); err != nil {
				return fmt.Errorf("trusted_proxies: %q is neither an IP address nor a CIDR", p)
			}
		}
	}
	if c.Health.Interval.Duration <= 0 || c.Health.Timeout.Duration <= 0 {
		return fmt.Errorf("health.interval and health.timeout must be positive")
	}
	if c.Files.MaxSize > c.Files.MaxStoreSize {
		return fmt.Errorf("files.max_size must not be over files.max_store_size")
	}
	if c.Files.Timeout.Duration > c.Exec.MaxTimeout.Duration {
		return fmt.Errorf("files.timeout %s is over exec.max_timeout %s", c.Files.Timeout.Duration, c.Exec.MaxTimeout.Duration)
	}
	if u := c.Slack.WebhookURL; u != "" {
		if pu, err := url.Parse(u); err != nil || (pu.Scheme != "https" && pu.Scheme != "http") || pu.Host == "" {
			return fmt.Errorf("slack.webhook_url: want an http(s) URL")
		}
	}
	if err := model.ValidRemoteTmp(c.SSH.RemoteTmp); err != nil {
		return fmt.Errorf("ssh.%w", err)
	}
	if d := c.SSH.ConnectTimeout.Duration; d < time.Second || d > 5*time.Minute {
		return fmt.Errorf("ssh.connect_timeout %s: want 1s to 5m", d)
	}
	if d := c.SSH.FactsTTL.Duration; d < time.Second || d > 720*time.Hour {
		return fmt.Errorf("ssh.facts_ttl %s: want 1s to 720h", d)
	}
	if err := ssh.CheckJumpRules(c.SSH.Jump); err != nil {
		return err
	}
	if c.SSH.HostKeys != "strict" && c.SSH.HostKeys != "accept-new" {
		return fmt.Errorf("ssh.host_keys %q: want strict or accept-new", c.SSH.HostKeys)
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

// computeDefaults works out the unset keys tagged zero:"computed" whose
// default depends on the machine or on other keys: data_dir by uid
// (config.DefaultDir), ssh.known_hosts, ssh.key_dirs and
// bootstrap.minion_dir under data_dir, files.timeout its default but at
// most exec.max_timeout. The other two are worked out when the master
// starts, from what exists only then: callbacks.secret (callbackSecret)
// and bootstrap.master_url from the listener and, listening on all
// addresses, from each SSH connection (bootstrapURL).
func (c *Config) computeDefaults() {
	if c.DataDir == "" {
		c.DataDir = config.DefaultDir("data", "master")
	}
	if c.Files.Timeout.Duration <= 0 {
		var d Config
		config.SetDefaults(&d)
		c.Files.Timeout.Duration = min(d.Files.Timeout.Duration, c.Exec.MaxTimeout.Duration)
	}
	if c.SSH.KnownHosts == "" {
		c.SSH.KnownHosts = filepath.Join(c.DataDir, "known_hosts")
	}
	if len(c.SSH.KeyDirs) == 0 {
		c.SSH.KeyDirs = []string{filepath.Join(c.DataDir, "keys")}
		if home, err := os.UserHomeDir(); err == nil {
			c.SSH.KeyDirs = append(c.SSH.KeyDirs, filepath.Join(home, ".ssh"))
		}
	}
	if c.Bootstrap.MinionDir == "" {
		c.Bootstrap.MinionDir = filepath.Join(c.DataDir, "dist")
	}
}
