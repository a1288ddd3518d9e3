package model

import (
	"debug/elf"
	"debug/macho"
	"debug/pe"
	"errors"
	"fmt"
	"io"
	"regexp"
	"strings"
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

// unameArch maps uname machines (the arch fact: Linux's x86_64 and
// aarch64, the BSDs' amd64, macOS's arm64) to GOARCH names.
var unameArch = map[string]string{"x86_64": "amd64", "amd64": "amd64", "aarch64": "arm64", "arm64": "arm64",
	"i386": "386", "i486": "386", "i586": "386", "i686": "386", "armv7l": "arm", "armv6l": "arm", "armv8l": "arm",
	"riscv64": "riscv64", "ppc64le": "ppc64le", "s390x": "s390x"}

// BinaryPlatform reads an executable's header (never running it) and
// returns the GOOS and GOARCH it is built for: an ELF executable is for
// FreeBSD when its OS ABI says so and for Linux otherwise, a Mach-O one for
// darwin, a PE one for windows. Anything else is an error.
func BinaryPlatform(r io.ReaderAt) (goos, goarch string, err error) {
	var magic [4]byte
	if _, err := r.ReadAt(magic[:], 0); err != nil {
		return "", "", fmt.Errorf("read the executable's header: %w", err)
	}
	switch {
	case string(magic[:]) == elf.ELFMAG:
		return elfPlatform(r)
	case magic[0] == 'M' && magic[1] == 'Z':
		f, err := pe.NewFile(r)
		if err != nil {
			return "", "", fmt.Errorf("not a PE executable: %w", err)
		}
		defer f.Close()
		if arch, ok := peArch[f.Machine]; ok && f.Characteristics&pe.IMAGE_FILE_EXECUTABLE_IMAGE != 0 {
			return "windows", arch, nil
		}
		return "", "", fmt.Errorf("PE file for machine %#x, not an executable felix builds", f.Machine)
	default:
		f, err := macho.NewFile(r)
		if err != nil {
			return "", "", errors.New("not an executable: no ELF, Mach-O or PE header")
		}
		defer f.Close()
		if arch, ok := machoArch[f.Cpu]; ok && f.Type == macho.TypeExec {
			return "darwin", arch, nil
		}
		return "", "", fmt.Errorf("Mach-O file of type %v for %v, not an executable felix builds", f.Type, f.Cpu)
	}
}

var (
	peArch    = map[uint16]string{pe.IMAGE_FILE_MACHINE_AMD64: "amd64", pe.IMAGE_FILE_MACHINE_ARM64: "arm64", pe.IMAGE_FILE_MACHINE_I386: "386"}
	machoArch = map[macho.Cpu]string{macho.CpuAmd64: "amd64", macho.CpuArm64: "arm64"}
)

// elfPlatform is BinaryPlatform for an ELF file.
func elfPlatform(r io.ReaderAt) (goos, goarch string, err error) {
	f, err := elf.NewFile(r)
	if err != nil {
		return "", "", fmt.Errorf("not an ELF executable: %w", err)
	}
	defer f.Close()
	if f.Type != elf.ET_EXEC && f.Type != elf.ET_DYN {
		return "", "", fmt.Errorf("ELF file of type %s, not an executable", f.Type)
	}
	is64, le := f.Class == elf.ELFCLASS64, f.Data == elf.ELFDATA2LSB
	switch m := f.Machine; {
	case m == elf.EM_X86_64 && is64:
		goarch = "amd64"
	case m == elf.EM_AARCH64 && is64:
		goarch = "arm64"
	case m == elf.EM_386 && !is64:
		goarch = "386"
	case m == elf.EM_ARM && !is64:
		goarch = "arm"
	case m == elf.EM_RISCV && is64:
		goarch = "riscv64"
	case m == elf.EM_PPC64 && is64 && le:
		goarch = "ppc64le"
	case m == elf.EM_S390 && is64 && !le:
		goarch = "s390x"
	default:
		return "", "", fmt.Errorf("ELF executable for %s (%s), which felix does not build minions for", m, f.Class)
	}
	switch f.OSABI {
	case elf.ELFOSABI_NONE, elf.ELFOSABI_LINUX:
		return "linux", goarch, nil
	case elf.ELFOSABI_FREEBSD:
		return "freebsd", goarch, nil
	}
	return "", "", fmt.Errorf("ELF executable for %s, not Linux or FreeBSD", f.OSABI)
}

// GoOS turns a host's system fact (uname -s, "Linux", "FreeBSD",
// "Darwin") into its GOOS name; "" when unknown. An empty fact (a minion
// from before the fact existed) is Linux.
func GoOS(uname string) string {
	switch strings.ToLower(uname) {
	case "", "linux":
		return "linux"
	case "freebsd":
		return "freebsd"
	case "darwin":
		return "darwin"
	case "windows", "windows_nt":
		return "windows"
	}
	return ""
}

// GoArch turns a host's arch fact (uname machine, "x86_64") into its GOARCH
// name ("amd64"); "" when unknown.
func GoArch(uname string) string { return unameArch[uname] }
