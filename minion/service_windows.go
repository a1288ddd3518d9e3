package minion

import (
	"context"
	"errors"
	"fmt"
	"io"
	"time"

	"golang.org/x/sys/windows"
	"golang.org/x/sys/windows/svc"
	"golang.org/x/sys/windows/svc/mgr"
)

// ServiceName is the name the minion runs under in the Windows service
// control manager (sc.exe create felix-minion binPath= "...minion.exe start").
const ServiceName = "felix-minion"

// runService runs start as the service ServiceName when the service
// control manager started this process, and reports whether it did: a
// stop or shutdown request cancels start's context, so the minion drains
// as on SIGTERM elsewhere. Run from a console, it returns false and start
// runs in the foreground as on Unix.
func runService(ctx context.Context, start func(context.Context) error) (bool, error) {
	isService, err := svc.IsWindowsService()
	if err != nil {
		return false, fmt.Errorf("find whether this is a service: %w", err)
	}
	if !isService {
		return false, nil
	}
	h := &serviceHandler{ctx: ctx, start: start}
	if err := svc.Run(ServiceName, h); err != nil {
		return true, fmt.Errorf("run as the service %s: %w", ServiceName, err)
	}
	return true, h.err
}

// serviceHandler is the svc.Handler of the minion service.
type serviceHandler struct {
	ctx   context.Context
	start func(context.Context) error
	err   error // start's, once Execute returned
}

// Execute runs start until it returns or the manager asks the service to
// stop, telling the manager each change of state.
func (h *serviceHandler) Execute(_ []string, req <-chan svc.ChangeRequest, status chan<- svc.Status) (bool, uint32) {
	status <- svc.Status{State: svc.StartPending}
	ctx, cancel := context.WithCancel(h.ctx)
	defer cancel()
	done := make(chan error, 1)
	go func() { done <- h.start(ctx) }()
	status <- svc.Status{State: svc.Running, Accepts: svc.AcceptStop | svc.AcceptShutdown}
	for {
		select {
		case err := <-done:
			h.err = err
			if err != nil {
				return true, 1 // a service-specific exit code: start failed
			}
			return false, 0
		case c := <-req:
			switch c.Cmd {
			case svc.Interrogate:
				status <- c.CurrentStatus
			case svc.Stop, svc.Shutdown:
				status <- svc.Status{State: svc.StopPending, WaitHint: uint32((drainLimit + 5*time.Second) / time.Millisecond)}
				cancel()
			}
		}
	}
}

// openService opens ServiceName in the service control manager; ok is
// false when the manager cannot be reached or the service is not
// installed, and the caller falls back to the pid file.
func openService() (m *mgr.Mgr, s *mgr.Service, ok bool) {
	m, err := mgr.Connect()
	if err != nil {
		return nil, nil, false
	}
	s, err = m.OpenService(ServiceName)
	if err != nil {
		m.Disconnect()
		return nil, nil, false
	}
	return m, s, true
}

// stopService stops the installed service through the manager and waits
// for it to drain; handled is false when there is no such service.
func stopService(stdout io.Writer) (handled bool, err error) {
	m, s, ok := openService()
	if !ok {
		return false, nil
	}
	defer m.Disconnect()
	defer s.Close()
	st, err := s.Query()
	if err != nil {
		return true, fmt.Errorf("query the service %s: %w", ServiceName, err)
	}
	if st.State == svc.Stopped {
		return true, fmt.Errorf("the service %s is not running", ServiceName)
	}
	if _, err := s.Control(svc.Stop); err != nil && !errors.Is(err, windows.ERROR_SERVICE_NOT_ACTIVE) {
		return true, fmt.Errorf("stop the service %s: %w", ServiceName, err)
	}
	if err := waitService(s, svc.Stopped, drainLimit+10*time.Second); err != nil {
		return true, err
	}
	fmt.Fprintf(stdout, "service %s stopped\n", ServiceName)
	return true, nil
}

// restartService stops (when running) and starts the installed service;
// handled is false when there is no such service.
func restartService(stdout io.Writer) (handled bool, err error) {
	m, s, ok := openService()
	if !ok {
		return false, nil
	}
	defer m.Disconnect()
	defer s.Close()
	if st, err := s.Query(); err == nil && st.State != svc.Stopped {
		if _, err := s.Control(svc.Stop); err != nil && !errors.Is(err, windows.ERROR_SERVICE_NOT_ACTIVE) {
			return true, fmt.Errorf("stop the service %s: %w", ServiceName, err)
		}
		if err := waitService(s, svc.Stopped, drainLimit+10*time.Second); err != nil {
			return true, err
		}
	}
	if err := s.Start(); err != nil {
		return true, fmt.Errorf("start the service %s: %w", ServiceName, err)
	}
	if err := waitService(s, svc.Running, time.Minute); err != nil {
		return true, err
	}
	fmt.Fprintf(stdout, "service %s restarted\n", ServiceName)
	return true, nil
}

// waitService waits until s is in state want, for at most limit.
func waitService(s *mgr.Service, want svc.State, limit time.Duration) error {
	deadline := time.Now().Add(limit)
	for {
		st, err := s.Query()
		if err != nil {
			return fmt.Errorf("query the service %s: %w", ServiceName, err)
		}
		if st.State == want {
			return nil
		}
		if time.Now().After(deadline) {
			return fmt.Errorf("the service %s is still in state %d after %s", ServiceName, st.State, limit)
		}
		time.Sleep(200 * time.Millisecond)
	}
}
