package model

import (
	"debug/elf"
	"errors"
	"fmt"
	"io"
	"regexp"
)

// CmdUpgrade is the command type of a fleet upgrade job (JobSpec.Upgrade):
// each target minion gets a new minion binary, swaps itself and comes back.
const CmdUpgrade = "upgrade"

// Upgrade outcomes: what a fleet upgrade did on one host. They are the
// first word of the host's stdout ("upgraded v1 -> v2"), the job host
// state being ok (upgraded, unchanged) or failed (rolled_back, failed).
const (
	OutcomeUpgraded   = "upgraded"    // swapped and back with the new version
	OutcomeUnchanged  = "unchanged"   // already that binary or version; nothing sent or swapped
	OutcomeRolledBack = "rolled_back" // swapped, the new binary did not come up, the old one restored
)

// UpgradeSpec is a validated fleet upgrade (CmdType upgrade).
type UpgradeSpec struct {
	// Canary is how many hosts run first, as one batch; the rest run only
	// when every canary host ended ok.
	Canary int `json:"canary,omitempty"`
	// Binary, when set, is the sha256 of the one binary to send (in the
	// master's content store), built for BinaryOS/BinaryArch; hosts of
	// another os/arch fail. Unset: each host's binary comes from the
	// master's dist directory by its os/arch facts.
	Binary     string `json:"binary,omitempty"`
	BinarySize int64  `json:"binary_size,omitempty"`
	BinaryOS   string `json:"binary_os,omitempty"`
	BinaryArch string `json:"binary_arch,omitempty"`
}

var sha256Hex = regexp.MustCompile(`^[0-9a-f]{64}$`)

// Check validates an upgrade spec.
func (u *UpgradeSpec) Check() error {
	if u.Canary < 0 {
		return errors.New("canary must be 0 or more")
	}
	if u.Binary != "" && !sha256Hex.MatchString(u.Binary) {
		return fmt.Errorf("binary %q: want a lower-case hex sha256", u.Binary)
	}
	if u.Binary != "" && (u.BinaryOS == "" || u.BinaryArch == "") {
		return errors.New("binary: its os and arch are needed")
	}
	return nil
}

// UpgradeBinary is a minion binary on its way to a host.
type UpgradeBinary struct {
	// Name says where it comes from, for messages ("dist/minion-linux-amd64").
	Name   string
	Size   int64
	SHA256 string
	Open   func() (io.ReadCloser, error)
}

// UpgradeReport is what an upgrade over SSH (of a host a bootstrap
// installed its minion on) did: its outcome, the versions, and a detail
// for the host's output (a rollback's reason, a repair done on the way).
type UpgradeReport struct {
	Outcome  string // Outcome*; "" when it failed before anything was replaced
	From, To string // the versions before and of the binary sent
	Detail   string
}

// MinionInfo is what a minion says of itself when pinged.
type MinionInfo struct {
	Version string
	// BinarySHA256 is the sha256 of its running binary ("" if unknown).
	BinarySHA256 string
	// Uptime is how long its process (or service) has been running.
	Uptime int64 // milliseconds
}

// elfArch maps ELF machines to GOARCH names, and unameArch uname machines.
var (
	elfArch = map[elf.Machine]string{elf.EM_X86_64: "amd64", elf.EM_AARCH64: "arm64", elf.EM_386: "386",
		elf.EM_ARM: "arm", elf.EM_RISCV: "riscv64", elf.EM_PPC64: "ppc64le", elf.EM_S390: "s390x"}
	unameArch = map[string]string{"x86_64": "amd64", "amd64": "amd64", "aarch64": "arm64", "arm64": "arm64",
		"i386": "386", "i686": "386", "armv7l": "arm", "armv6l": "arm", "riscv64": "riscv64",
		"ppc64le": "ppc64le", "s390x": "s390x"}
)

// BinaryPlatform reads an executable's header (never running it) and
// returns the GOOS and GOARCH it is built for. Only Linux ELF executables
// are minion binaries; anything else is an error.
func BinaryPlatform(r io.ReaderAt) (goos, goarch string, err error) {
	f, err := elf.NewFile(r)
	if err != nil {
		return "", "", fmt.Errorf("not an ELF executable: %w", err)
	}
	defer f.Close()
	if f.Type != elf.ET_EXEC && f.Type != elf.ET_DYN {
		return "", "", fmt.Errorf("ELF file of type %s, not an executable", f.Type)
	}
	arch, ok := elfArch[f.Machine]
	if !ok {
		return "", "", fmt.Errorf("ELF executable for %s, which felix does not build minions for", f.Machine)
	}
	if f.OSABI != elf.ELFOSABI_NONE && f.OSABI != elf.ELFOSABI_LINUX {
		return "", "", fmt.Errorf("ELF executable for %s, not Linux", f.OSABI)
	}
	return "linux", arch, nil
}

// GoArch turns a host's arch fact (uname machine, "x86_64") into its GOARCH
// name ("amd64"); "" when unknown.
func GoArch(uname string) string { return unameArch[uname] }
