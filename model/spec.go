package model

import "time"

// Command types of a job (JobSpec.CmdType, the API's cmd_type).
const (
	CmdLine   = "line"   // cmd_line run with /bin/sh -c
	CmdScript = "script" // content placed in a private directory, cmd_line run there
	CmdFile   = "file"   // like script
	CmdPush   = "push"   // files placed on the hosts
	CmdFetch  = "fetch"  // a file read from every host
	CmdPkg    = "pkg"    // packages installed, removed, upgraded, listed (JobSpec.Packages)
	// CmdApply (model/apply.go): a state document applied (JobSpec.Apply)
)

// JobSpec is a validated job request. It is stored with the job as JSON,
// so the job can be rerun; its JSON shape must stay readable by later
// versions.
type JobSpec struct {
	ClientID      string        `json:"id,omitempty"` // the requester's id, echoed back
	CmdType       string        `json:"cmd_type"`     // one of the Cmd* types
	CmdLine       string        `json:"cmd_line"`
	Env           []string      `json:"env,omitempty"`
	Dir           string        `json:"cwd,omitempty"`
	Timeout       time.Duration `json:"timeout"`
	Targets       []string      `json:"targets"`
	Batch         string        `json:"batch,omitempty"` // "N" or "N%": hosts at a time (see ParseBatch)
	FailThreshold int           `json:"fail_threshold,omitempty"`
	CallbackURL   string        `json:"callback_url,omitempty"`
	FileName      string        `json:"file_name,omitempty"` // script/file: name in the working directory
	FileSize      int64         `json:"file_size,omitempty"`
	// Shell is the interpreter on Windows minions ("", "cmd", "powershell",
	// see Command.Shell); minions on other systems and SSH hosts refuse
	// any but "".
	Shell string `json:"shell,omitempty"`
	// Transport is the mode every host runs in: ModeAuto ("" too),
	// ModeAgent or ModeSSH. Kept so a rerun runs the same way.
	Transport string `json:"transport,omitempty"`
	// SSHUser and Become, when set, replace the login and sudo setting of
	// every host the run reaches over SSH; minions ignore them. Sudo is
	// still decided by the host's sudoers.
	SSHUser string `json:"ssh_user,omitempty"`
	Become  bool   `json:"become,omitempty"`
	// BecomeUser, when set, makes become run as this user (sudo -n -u) on
	// every host the run reaches over SSH; it implies Become.
	BecomeUser string `json:"become_user,omitempty"`
	// Push or Fetch make a file job (CmdType push or fetch).
	Push  *PushSpec  `json:"push,omitempty"`
	Fetch *FetchSpec `json:"fetch,omitempty"`
	// Packages makes a package job (CmdType pkg).
	Packages *PkgSpec `json:"packages,omitempty"`
	// Apply makes an apply job (CmdType apply).
	Apply *ApplySpec `json:"apply,omitempty"`
	// Upgrade makes a fleet upgrade job (CmdType upgrade).
	Upgrade *UpgradeSpec `json:"upgrade,omitempty"`
}

// IsTransfer reports whether spec is a file job.
func (spec JobSpec) IsTransfer() bool { return spec.Push != nil || spec.Fetch != nil }

// HasPayload reports whether spec's job carries content to place beside
// its command: script and file commands.
func (spec JobSpec) HasPayload() bool { return spec.CmdType == CmdScript || spec.CmdType == CmdFile }

// PushSpec is a validated push: entries in order, each directory before
// what it holds, files by the sha256 of content in the master's store.
type PushSpec struct {
	Dest           string      `json:"dest"`
	Entries        []EntrySpec `json:"entries"`
	Owner          string      `json:"owner,omitempty"`
	Mkdir          bool        `json:"mkdir,omitempty"`
	Backup         bool        `json:"backup,omitempty"`
	FollowSymlinks bool        `json:"follow_symlinks,omitempty"`
}

// EntrySpec is one entry of a PushSpec.
type EntrySpec struct {
	Path   string   `json:"path"` // "." or slash-separated below Dest (see CheckEntryPath)
	Kind   FileKind `json:"kind"`
	Mode   uint32   `json:"mode,omitempty"`
	SHA256 string   `json:"sha256,omitempty"`
	Size   int64    `json:"size,omitempty"`
	Link   string   `json:"link,omitempty"`
}

// FetchSpec is a validated fetch.
type FetchSpec struct {
	Path           string `json:"path"`
	FollowSymlinks bool   `json:"follow_symlinks,omitempty"`
}

// Limits of a job request, checked at the door before anything is stored:
// a command, its environment and its targets travel to every host and are
// stored with the job and in its callback.
const (
	MaxCmdLine     = 64 << 10  // bytes of cmd_line
	MaxEnvVars     = 128       // variables in env
	MaxEnvBytes    = 128 << 10 // env's names and values together
	MaxTargets     = 20000     // entries in targets
	MaxTargetLen   = 1024      // bytes of one entry of targets
	MaxCallbackURL = 2048      // bytes of callback_url
	MaxPathLen     = 4096      // bytes of cwd and other paths on the host
)

// IsUpgrade reports whether spec is a fleet upgrade job (model/upgrade.go).
func (spec JobSpec) IsUpgrade() bool { return spec.Upgrade != nil }
