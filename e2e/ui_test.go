package e2e

import (
	"context"
	"crypto/sha256"
	"crypto/tls"
	"encoding/base64"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/chromedp/chromedp"

	"github.com/felix-ops/felix/internal/testenv"
	"github.com/felix-ops/felix/pki"
)

// The dashboard test drives Debian's real headless Chromium through the
// DevTools protocol (chromedp) against a real master with real minions.
//
// The master's certificate is self-signed and pinned by fingerprint, so
// Chromium cannot verify it. Rather than --ignore-certificate-errors
// (any certificate at all), the test pins it in Chromium too: it reads the
// master's certificate over a connection pinned to the fingerprint the
// master printed, and passes that certificate's public key hash in
// --ignore-certificate-errors-spki-list, so Chromium accepts this key and
// no other.

// chromiumPath finds the chromium binary, or skips (fails under CI=true).
func chromiumPath(t *testing.T) string {
	t.Helper()
	for _, name := range []string{"chromium", "chromium-browser", "google-chrome"} {
		if p, err := exec.LookPath(name); err == nil {
			return p
		}
	}
	testenv.Missing(t, "chromium not installed (scripts/deps.sh installs it): the web dashboard test needs a real browser")
	return ""
}

// masterSPKI returns the base64 SHA-256 of the master's public key, read
// over a TLS connection pinned to its fingerprint.
func (c *cluster) masterSPKI() string {
	c.t.Helper()
	conn, err := tls.Dial("tcp", strings.TrimPrefix(c.url, "https://"), pki.ClientConfig(nil, c.fingerprint))
	if err != nil {
		c.t.Fatalf("pinned TLS to the master: %v", err)
	}
	defer conn.Close()
	sum := sha256.Sum256(conn.ConnectionState().PeerCertificates[0].RawSubjectPublicKeyInfo)
	return base64.StdEncoding.EncodeToString(sum[:])
}

// browser starts headless Chromium trusting the master's key only and
// returns its context; it ends with the test.
func (c *cluster) browser(chromium string) context.Context {
	c.t.Helper()
	opts := []chromedp.ExecAllocatorOption{
		chromedp.ExecPath(chromium),
		chromedp.Headless,
		chromedp.NoSandbox, // as root in CI
		chromedp.DisableGPU,
		chromedp.NoFirstRun,
		chromedp.NoDefaultBrowserCheck,
		chromedp.UserDataDir(c.t.TempDir()),
		chromedp.WindowSize(1280, 900),
		chromedp.Flag("disable-quic", true),
		chromedp.Flag("disable-background-networking", true),
		chromedp.Flag("disable-component-update", true),
		chromedp.Flag("disable-sync", true),
		chromedp.Flag("disable-dev-shm-usage", true),
		chromedp.Flag("disable-extensions", true),
		chromedp.Flag("ignore-certificate-errors-spki-list", c.masterSPKI()),
	}
	alloc, cancelAlloc := chromedp.NewExecAllocator(context.Background(), opts...)
	ctx, cancelCtx := chromedp.NewContext(alloc, chromedp.WithErrorf(c.t.Logf))
	c.t.Cleanup(func() {
		cancelCtx()
		cancelAlloc()
	})
	if err := chromedp.Do(ctx); err != nil { // starts the browser
		c.t.Fatalf("start chromium: %v", err)
	}
	return ctx
}

// screenshot saves the page as a PNG at path.
func screenshot(ctx context.Context, path string) error {
	png, err := chromedp.Run(ctx, chromedp.FullScreenshot(100))
	if err != nil {
		return fmt.Errorf("screenshot: %w", err)
	}
	return os.WriteFile(path, png, 0o644)
}

// TestDashboard logs in to the web dashboard of a real master with two
// real minions, sees them listed and filtered, previews a target, starts
// a job from the form, watches its output arrive while it runs, and opens
// it later from the jobs list, folded as the CLI prints it. A failure
// leaves a screenshot in a directory the log names; FELIX_UI_SCREENSHOT
// names where to save a screenshot of the finished job (docs/dashboard.png).
func TestDashboard(t *testing.T) {
	chromium := chromiumPath(t)
	c := startMaster(t)
	c.joinAll("web1", "web2")
	ctx := c.browser(chromium)
	ctx, cancel := context.WithTimeout(ctx, 3*time.Minute)
	defer cancel()
	t.Cleanup(func() {
		if !t.Failed() {
			return
		}
		dir, err := os.MkdirTemp("", "felix-ui-failure-")
		if err == nil {
			p := filepath.Join(dir, "dashboard.png")
			sctx, cancel := context.WithTimeout(context.WithoutCancel(ctx), 20*time.Second)
			defer cancel()
			if err = screenshot(sctx, p); err == nil {
				t.Logf("screenshot of the failure: %s", p)
			}
		}
		if err != nil {
			t.Logf("no screenshot of the failure: %v", err)
		}
	})
	poll := func(what, js string) {
		t.Helper()
		if _, err := chromedp.Run(ctx, chromedp.Poll[chromedp.Void](js, chromedp.WithPollingTimeout(60*time.Second))); err != nil {
			errText, _ := chromedp.Run(ctx, chromedp.TextContent(chromedp.ID("error")))
			body, _ := chromedp.Run(ctx, chromedp.Evaluate[string]("document.body.innerText"))
			t.Fatalf("%s: %v (page error %q)\n%s", what, err, errText, body)
		}
	}
	run := func(what string, steps ...chromedp.Action[chromedp.Void]) {
		t.Helper()
		if err := chromedp.Do(ctx, steps...); err != nil {
			t.Fatalf("%s: %v", what, err)
		}
	}

	// A wrong token is refused and shows no data.
	run("open the dashboard", chromedp.Navigate(c.url+"/ui/"), chromedp.WaitVisible(chromedp.ID("token")))
	run("log in with a wrong token", chromedp.SendKeys(chromedp.ID("token"), "felix_wrong"), chromedp.Click(chromedp.ID("login-submit")))
	poll("the wrong token refused", `document.getElementById('error').textContent.includes('login:') &&
		['fleet', 'nav'].every(id => getComputedStyle(document.getElementById(id)).display === 'none')`)

	run("log in", chromedp.SetValue(chromedp.ID("token"), c.token),
		chromedp.Click(chromedp.ID("login-submit")))
	poll("both minions listed, accepted", `['web1','web2'].every(id => {
		const r = document.querySelector('#minions tbody tr[data-id="' + id + '"]');
		return r && r.cells[1].textContent === 'accepted' && r.cells[3].textContent !== '';
	})`)
	cookieJS, err := chromedp.Run(ctx, chromedp.Evaluate[string](`document.cookie`))
	if err != nil {
		t.Fatal(err)
	}
	if strings.Contains(cookieJS, "felix-session") {
		t.Errorf("the session cookie is readable from script (%q); want HttpOnly", cookieJS)
	}

	// The fleet filter goes through the master's own target resolution.
	run("filter the fleet", chromedp.SendKeys(chromedp.ID("filter"), "web2"), chromedp.Click(chromedp.ID("filter-submit")))
	poll("only web2 left", `document.querySelectorAll('#minions tbody tr').length === 1 &&
		document.querySelector('#minions tbody tr').dataset.id === 'web2'`)

	// Run a command: preview first, then run; its first line shows while
	// it waits for the gate, the second only after.
	gate := filepath.Join(t.TempDir(), "gate")
	cmd := fmt.Sprintf("echo first-line; for i in $(seq 1200); do [ -e %s ] && break; sleep 0.1; done; echo second-line", gate)
	run("open the run form", chromedp.Navigate(c.url+"/ui/#/run"), chromedp.WaitVisible(chromedp.ID("run-target")))
	if disabled, err := chromedp.Run(ctx, chromedp.Evaluate[bool](`document.getElementById('run-submit').disabled`)); err != nil || !disabled {
		t.Errorf("the run button is enabled before a preview")
	}
	run("preview", chromedp.SendKeys(chromedp.ID("run-target"), "web*"), chromedp.Click(chromedp.ID("run-preview")))
	poll("the preview lists both hosts", `document.querySelectorAll('#preview-table tbody tr').length === 2 &&
		[...document.querySelectorAll('#preview-table tbody tr')].every(r => r.cells[2].textContent === 'would run') &&
		!document.getElementById('run-submit').disabled`)
	run("run", chromedp.SendKeys(chromedp.ID("run-cmd"), cmd), chromedp.Click(chromedp.ID("run-submit")))
	poll("the first line live on both hosts", `location.hash.startsWith('#/jobs/') &&
		['web1','web2'].every(h => { const p = document.querySelector('#live-hosts pre[data-host="' + h + '"]');
			return p && p.textContent.includes('first-line'); })`)
	liveText, err := chromedp.Run(ctx, chromedp.TextContent(chromedp.ID("live-hosts")))
	if err != nil {
		t.Fatal(err)
	}
	liveState, err := chromedp.Run(ctx, chromedp.TextContent(chromedp.ID("live-state")))
	if err != nil {
		t.Fatal(err)
	}
	if strings.Contains(liveText, "second-line") || liveState == "ended" {
		t.Fatalf("before the gate opened: live state %q, output %q; want the job running with only its first line", liveState, liveText)
	}
	if err := os.WriteFile(gate, nil, 0o644); err != nil {
		t.Fatal(err)
	}
	poll("the job ends, folded", `document.getElementById('live-state').textContent === 'ended' &&
		document.querySelector('#groups .group-head') !== null &&
		document.querySelector('#groups .group-head').textContent === 'web[1-2] (2 hosts): ok, exit 0'`)
	// The picture in the README: the job just ended, its live output
	// above its folded results.
	if p := os.Getenv("FELIX_UI_SCREENSHOT"); p != "" {
		if err := screenshot(ctx, p); err != nil {
			t.Errorf("FELIX_UI_SCREENSHOT: %v", err)
		} else {
			t.Logf("screenshot saved: %s", p)
		}
	}

	hash, err := chromedp.Run(ctx, chromedp.Evaluate[string](`location.hash`))
	if err != nil {
		t.Fatal(err)
	}
	jobID := strings.TrimPrefix(hash, "#/jobs/")
	if j := c.job(jobID); j.State != "done" || j.Summary["ok"] != 2 {
		t.Errorf("the API says job %s is %s %v; want done, 2 ok", jobID, j.State, j.Summary)
	}

	// Later: the jobs list, then the job from it.
	run("open the jobs list", chromedp.Navigate(c.url+"/ui/#/jobs"))
	sel := `#jobs-table tbody tr[data-id="` + jobID + `"] a`
	poll("the job listed", `document.querySelector('`+sel+`') !== null`)
	run("open the job", chromedp.Click(chromedp.CSS(sel)))
	poll("the job shown folded, not live", `document.getElementById('job-id').textContent === '`+jobID+`' &&
		document.getElementById('live').hidden && document.querySelectorAll('#groups .group').length === 1 &&
		document.querySelector('#groups pre.stdout').textContent === 'first-line\nsecond-line\n'`)

	// Logging out ends the session: the data routes answer 401 again.
	run("log out", chromedp.Click(chromedp.ID("logout")))
	poll("the login form again", `!document.getElementById('login').hidden`)
	status, err := chromedp.Run(ctx, chromedp.Evaluate[int](`fetch('/ui/api/minions').then(r => r.status)`, chromedp.EvalAwaitPromise))
	if err != nil || status != 401 {
		t.Errorf("GET /ui/api/minions after logout = %d; want 401", status)
	}
}
