package config

import (
	"errors"
	"fmt"
	"io/fs"
	"net"
	"net/url"
	"os"
	"path/filepath"
	"regexp"

	"github.com/felix-ops/felix/model"
	"github.com/felix-ops/felix/pki"
)

// Minion is the minion's configuration file (TOML): written commented by
// the minion on its first run (MinionTemplate) and by bootstrap (Render).
// Computed defaults (Validate): id is the host name, data_dir is
// /var/lib/felix/minion for root, else ~/.local/share/felix/minion.
type Minion struct {
	Master string `toml:"master" env:"FELIX_MINION_MASTER" flag:"master" doc:"URL of the master's API, e.g. \"https://master.example.net:8443\"."`

	MasterFingerprint string `toml:"master_fingerprint" env:"FELIX_MINION_MASTER_FINGERPRINT" flag:"master-fingerprint" doc:"Fingerprint of the master's certificate (\"sha256:...\"; master start prints it). Empty: trust the first master certificate seen and refuse any other later (the one seen is kept in data_dir/master.fingerprint)."`

	JoinToken string `toml:"join_token" env:"FELIX_MINION_JOIN_TOKEN" flag:"join-token" doc:"Join token from \"master token join\"; only needed for the first registration. A flag is visible to every local user in ps: prefer join_token_file."`

	JoinTokenFile string `toml:"join_token_file" env:"FELIX_MINION_JOIN_TOKEN_FILE" flag:"join-token-file" doc:"A file holding the join token (read at each registration; once the minion is accepted it may be deleted). Not with join_token."`

	ID string `toml:"id" env:"FELIX_MINION_ID" flag:"id" zero:"computed" doc:"This minion's id; empty means the host name."`

	Listen string `toml:"listen" default:":4510" zero:"error" env:"FELIX_MINION_LISTEN" flag:"listen" doc:"Address of the gRPC server the master dials (mutual TLS)."`

	Advertise string `toml:"advertise" env:"FELIX_MINION_ADVERTISE" flag:"advertise" doc:"host:port the master should dial, when it differs from listen (NAT, several addresses). Empty: listen's host, or the address the master sees us at."`

	DataDir string `toml:"data_dir" zero:"computed" env:"FELIX_MINION_DATA_DIR" flag:"data-dir" doc:"Where the minion keeps its key and certificate (minion.key, minion.crt), the pinned master fingerprint and its pid file. Empty means /var/lib/felix/minion for root, else ~/.local/share/felix/minion."`

	LogLevel string `toml:"log_level" default:"info" env:"FELIX_MINION_LOG_LEVEL" flag:"log-level" doc:"debug, info, warn or error. Logs go to stderr."`

	LogFormat string `toml:"log_format" default:"text" env:"FELIX_MINION_LOG_FORMAT" flag:"log-format" doc:"text (key=value pairs) or json (one JSON object a line, for a log shipper)."`

	// FileRoots are the directories the master may put files in or fetch
	// them from; empty means any absolute path.
	FileRoots []string `toml:"file_roots" doc:"Directories the master may put files in (felix cp) or fetch them from, e.g. [\"/etc/nginx\", \"/srv\"]. Symlinks in them are resolved. Empty means any absolute path."`
}

// MinionHeader heads the minion's first-run file.
const MinionHeader = "# felix minion configuration.\n# Flags and FELIX_MINION_* environment variables override what is set here.\n"

// MinionTemplate is the commented file a minion writes on its first run.
var MinionTemplate = Template(MinionHeader, Minion{})

// DefaultMinion returns a minion configuration with every key at its default.
func DefaultMinion() Minion {
	var c Minion
	SetDefaults(&c)
	return c
}

// LoadMinion loads the minion's config file, writing MinionTemplate first
// if there is none.
func LoadMinion(path string) (Minion, bool, error) {
	var c Minion
	created, err := Load(path, MinionTemplate, &c)
	return c, created, err
}

// Validate checks the configuration after every layer is applied and fills
// in defaults: unset keys take their default, id and data_dir are computed.
func (c *Minion) Validate() error {
	FillZero(c)
	if c.ID == "" {
		h, err := os.Hostname()
		if err != nil {
			return fmt.Errorf("id not set and host name unknown: %w", err)
		}
		c.ID = h
	}
	if c.DataDir == "" {
		c.DataDir = DefaultDir("data", "minion")
	}
	if c.JoinTokenFile != "" {
		if c.JoinToken != "" {
			return fmt.Errorf("join_token and join_token_file are both set: keep one")
		}
		if !filepath.IsAbs(c.JoinTokenFile) {
			return fmt.Errorf("join_token_file %q: want an absolute path", c.JoinTokenFile)
		}
	}
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
	if err := model.ValidID(c.ID); err != nil {
		return fmt.Errorf("%w (set id or --id)", err)
	}
	if _, _, err := net.SplitHostPort(c.Listen); err != nil {
		return fmt.Errorf("listen %q: want host:port", c.Listen)
	}
	if err := ValidLogLevel(c.LogLevel); err != nil {
		return err
	}
	if err := ValidLogFormat(c.LogFormat); err != nil {
		return err
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
	return nil
}

// joinTokenLine matches a join_token setting with a value in a minion's
// config file.
var joinTokenLine = regexp.MustCompile(`(?m)^[ \t]*join_token[ \t]*=[ \t]*"[^"\n]+"[ \t]*(#.*)?$`)

// ScrubJoinToken blanks a join_token set in the minion config file at
// path, keeping the rest of the file as it is: once the minion is
// registered its own key is its credential, and the token should not lie
// around (bootstrap writes it there). It reports whether it changed the
// file; a missing file is no change.
func ScrubJoinToken(path string) (bool, error) {
	b, err := os.ReadFile(path)
	if errors.Is(err, fs.ErrNotExist) {
		return false, nil
	}
	if err != nil {
		return false, fmt.Errorf("read %s: %w", path, err)
	}
	if !joinTokenLine.Match(b) {
		return false, nil
	}
	st, err := os.Stat(path)
	if err != nil {
		return false, fmt.Errorf("stat %s: %w", path, err)
	}
	out := joinTokenLine.ReplaceAll(b, []byte(`join_token = "" # removed once this minion was registered`))
	if err := pki.WriteFileAtomic(path, out, st.Mode().Perm()); err != nil {
		return false, fmt.Errorf("remove the join token from %s: %w", path, err)
	}
	return true, nil
}

// ReadMinion reads the minion's config file without writing anything; a
// missing file gives the defaults and exists false.
func ReadMinion(path string) (c Minion, exists bool, err error) {
	exists, err = Read(path, MinionTemplate, &c)
	return c, exists, err
}

// CheckMinion reads and validates the minion's config file at path,
// writing nothing (minion config check).
func CheckMinion(path string) error {
	var c Minion
	return Check(path, MinionTemplate, &c, c.Validate)
}

// WriteMinionFirstRun writes the minion's first-run file at path: every
// key commented, at c's values (the defaults with what flags and the
// environment set).
func WriteMinionFirstRun(path string, c Minion) error {
	b, err := Render(MinionHeader, c)
	if err != nil {
		return fmt.Errorf("render config: %w", err)
	}
	return WriteNew(path, b)
}
