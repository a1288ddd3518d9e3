package local

import (
	"context"
	"fmt"
	"os"
	osexec "os/exec"
	"path/filepath"
	"sync/atomic"
	"syscall"
	"time"
	"unsafe"

	"github.com/felix-ops/felix/model"
	"golang.org/x/sys/windows"
)

// killedExitCode is the exit code TerminateJobObject gives every process
// of a job killed at its deadline or on cancellation.
const killedExitCode = 1

// ntResumeProcess resumes every thread of a process started suspended;
// os/exec does not hand out the main thread's handle ResumeThread needs.
var ntResumeProcess = windows.NewLazySystemDLL("ntdll.dll").NewProc("NtResumeProcess")

// Run runs cmd on Windows (see BuildWinCommand for the program chosen),
// streaming output to out as it is produced. out may be nil to discard
// output.
//
// The process starts suspended, joins a new Job Object created with
// JOB_OBJECT_LIMIT_KILL_ON_JOB_CLOSE and only then runs, so every child it
// starts belongs to the job. At the deadline (cmd.Timeout, in addition to
// ctx) or when ctx is done the whole job is terminated at once: Windows has
// no SIGTERM a console program could catch, so there is no grace period.
// When the command ends, processes it left running in the background are
// killed with the job when Run closes it. The exit code is the program's
// own; a killed job exits with killedExitCode and TimedOut or Cancelled.
func Run(ctx context.Context, cmd model.Command, out model.OutputFunc) (model.Exit, error) {
	runCtx, cancel := runContext(ctx, cmd.Timeout)
	defer cancel()
	wc, err := BuildWinCommand(cmd, comspec(), powerShell())
	if err != nil {
		return model.Exit{}, fmt.Errorf("start command: %w", err)
	}
	job, err := newKillJob()
	if err != nil {
		return model.Exit{}, fmt.Errorf("start command: %w", err)
	}
	defer windows.CloseHandle(job) // kills what the command left running

	prog := wc.Path
	if cmd.Dir != "" && !filepath.IsAbs(prog) {
		prog = filepath.Join(cmd.Dir, prog)
	}
	c := osexec.CommandContext(runCtx, prog)
	c.SysProcAttr = &syscall.SysProcAttr{
		CmdLine:       wc.CmdLine,
		CreationFlags: windows.CREATE_SUSPENDED | windows.CREATE_NEW_PROCESS_GROUP,
		HideWindow:    true,
	}
	setup(c, cmd, out)

	var killed atomic.Bool
	c.Cancel = func() error {
		killed.Store(true)
		if err := windows.TerminateJobObject(job, killedExitCode); err != nil {
			return fmt.Errorf("terminate job of process %d: %w", c.Process.Pid, err)
		}
		return nil
	}

	start := time.Now()
	if err := c.Start(); err != nil {
		return model.Exit{}, fmt.Errorf("start command: %w", err)
	}
	if err := joinAndResume(job, c.Process.Pid); err != nil {
		_ = c.Process.Kill()
		_ = c.Wait()
		return model.Exit{}, fmt.Errorf("start command: %w", err)
	}
	_ = c.Wait() // its error only repeats ProcessState and the context
	ex := model.Exit{Duration: time.Since(start), Code: c.ProcessState.ExitCode()}
	if killed.Load() {
		markKilled(&ex, ctx, runCtx)
	}
	return ex, nil
}

// newKillJob creates a Job Object whose processes all die when its last
// handle is closed.
func newKillJob() (windows.Handle, error) {
	job, err := windows.CreateJobObject(nil, nil)
	if err != nil {
		return 0, fmt.Errorf("create job object: %w", err)
	}
	info := windows.JOBOBJECT_EXTENDED_LIMIT_INFORMATION{}
	info.BasicLimitInformation.LimitFlags = windows.JOB_OBJECT_LIMIT_KILL_ON_JOB_CLOSE
	if _, err := windows.SetInformationJobObject(job, windows.JobObjectExtendedLimitInformation,
		uintptr(unsafe.Pointer(&info)), uint32(unsafe.Sizeof(info))); err != nil {
		windows.CloseHandle(job)
		return 0, fmt.Errorf("set job object limits: %w", err)
	}
	return job, nil
}

// joinAndResume puts the suspended process pid into job and lets it run.
func joinAndResume(job windows.Handle, pid int) error {
	h, err := windows.OpenProcess(windows.PROCESS_SET_QUOTA|windows.PROCESS_TERMINATE|windows.PROCESS_SUSPEND_RESUME, false, uint32(pid))
	if err != nil {
		return fmt.Errorf("open process %d: %w", pid, err)
	}
	defer windows.CloseHandle(h)
	if err := windows.AssignProcessToJobObject(job, h); err != nil {
		return fmt.Errorf("assign process %d to its job: %w", pid, err)
	}
	if r, _, _ := ntResumeProcess.Call(uintptr(h)); r != 0 {
		return fmt.Errorf("resume process %d: NTSTATUS %#x", pid, r)
	}
	return nil
}

// comspec is the path of cmd.exe.
func comspec() string {
	if p := os.Getenv("ComSpec"); p != "" {
		return p
	}
	return filepath.Join(systemRoot(), "System32", "cmd.exe")
}

// powerShell is the path of Windows PowerShell.
func powerShell() string {
	return filepath.Join(systemRoot(), "System32", "WindowsPowerShell", "v1.0", "powershell.exe")
}

// systemRoot is %SystemRoot%, C:\Windows when unset.
func systemRoot() string {
	if p := os.Getenv("SystemRoot"); p != "" {
		return p
	}
	return `C:\Windows`
}
