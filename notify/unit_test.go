package notify

import (
	"context"
	"errors"
	"net"
	"net/http"
	"strconv"
	"strings"
	"testing"
	"time"
)

func signed(secret string, ts int64, body []byte) http.Header {
	h := http.Header{}
	h.Set(HeaderTimestamp, strconv.FormatInt(ts, 10))
	h.Set(HeaderSignature, Sign(secret, ts, body))
	return h
}

func TestSignVerify(t *testing.T) {
	body := []byte(`{"event_id":"cb-1","id":"seed"}`)
	now := time.Now().Unix()
	if err := Verify(secret, signed(secret, now, body), body, time.Minute); err != nil {
		t.Errorf("Verify(signed now) = %v; want nil", err)
	}
	if got := Sign("k", 1700000000, []byte("{}")); !strings.HasPrefix(got, "v1=") || len(got) != 3+64 {
		t.Errorf("Sign() = %q; want v1= and 64 hex digits", got)
	}
	rotated := signed(secret, now, body)
	rotated.Set(HeaderSignature, Sign("old-secret", now, body)+", "+Sign(secret, now, body))
	if err := Verify(secret, rotated, body, time.Minute); err != nil {
		t.Errorf("Verify(two signatures, one good) = %v; want nil", err)
	}

	stampMoved := signed(secret, now, body)
	stampMoved.Set(HeaderTimestamp, strconv.FormatInt(now+1, 10))
	noSig := signed(secret, now, body)
	noSig.Del(HeaderSignature)
	noStamp := signed(secret, now, body)
	noStamp.Del(HeaderTimestamp)
	for name, tc := range map[string]struct {
		h    http.Header
		body []byte
	}{
		"tampered body":      {signed(secret, now, body), []byte(`{"event_id":"cb-1","id":"other"}`)},
		"tampered timestamp": {stampMoved, body},
		"old timestamp":      {signed(secret, now-600, body), body},
		"future timestamp":   {signed(secret, now+600, body), body},
		"wrong secret":       {signed("not-the-secret", now, body), body},
		"no signature":       {noSig, body},
		"no timestamp":       {noStamp, body},
	} {
		if err := Verify(secret, tc.h, tc.body, time.Minute); !errors.Is(err, ErrSignature) {
			t.Errorf("Verify(%s) = %v; want ErrSignature", name, err)
		}
	}
}

func TestCheckURL(t *testing.T) {
	e := newEnv(t)
	own := func() []net.IP { return []net.IP{net.ParseIP("192.0.2.10")} }
	public := func(ctx context.Context, host string) ([]net.IPAddr, error) {
		switch host {
		case "public.example":
			return []net.IPAddr{{IP: net.ParseIP("203.0.113.5")}}, nil
		case "mixed.example": // one good, one loopback: refused
			return []net.IPAddr{{IP: net.ParseIP("203.0.113.5")}, {IP: net.ParseIP("127.0.0.1")}}, nil
		case "own.example":
			return []net.IPAddr{{IP: net.ParseIP("192.0.2.10")}}, nil
		}
		return net.DefaultResolver.LookupIPAddr(ctx, host)
	}
	refused := []string{
		"http://127.0.0.1:8080/",
		"http://127.1.2.3/",
		"http://[::1]/",
		"http://[::ffff:127.0.0.1]/",
		"http://169.254.169.254/latest/meta-data/",
		"http://[fe80::1%25eth0]/",
		"http://0.0.0.0/",
		"http://[::]/",
		"http://localhost/",
		"http://LOCALHOST./",
		"http://192.0.2.10:9000/",
		"http://own.example/",
		"http://mixed.example/",
		"ftp://public.example/",
		"http://user:pw@public.example/",
		"http:///nohost",
		"http://%zz/",
	}
	allowed := []string{"http://public.example/", "https://203.0.113.9:8443/x?y=1", "http://10.1.2.3/"}

	n := e.notifier(Config{OwnAddrs: own})
	n.lookup = public
	for _, u := range refused {
		if err := n.CheckURL(context.Background(), u); err == nil {
			t.Errorf("CheckURL(%q) = nil; want refused", u)
		}
	}
	for _, u := range allowed {
		if err := n.CheckURL(context.Background(), u); err != nil {
			t.Errorf("CheckURL(%q) = %v; want nil", u, err)
		}
	}

	n = e.notifier(Config{OwnAddrs: own, Allow: []string{"127.0.0.0/8", "::1", "169.254.169.254/32", "fe80::/10",
		"0.0.0.0", "::", "localhost", "192.0.2.0/24", "mixed.example:80"}})
	n.lookup = public
	for _, u := range []string{"http://127.0.0.1:8080/", "http://127.1.2.3/", "http://[::1]/", "http://[::ffff:127.0.0.1]/",
		"http://169.254.169.254/latest/meta-data/", "http://[fe80::1%25eth0]/", "http://0.0.0.0/", "http://[::]/",
		"http://localhost/", "http://LOCALHOST./", "http://192.0.2.10:9000/", "http://own.example/", "http://mixed.example/"} {
		if err := n.CheckURL(context.Background(), u); err != nil {
			t.Errorf("allow-listed: CheckURL(%q) = %v; want nil", u, err)
		}
	}
	for _, u := range []string{"ftp://127.0.0.1/", "http://user:pw@localhost/"} {
		if err := n.CheckURL(context.Background(), u); err == nil {
			t.Errorf("allow-listed: CheckURL(%q) = nil; want refused", u)
		}
	}

	// host:port allows that port only.
	n = e.notifier(Config{Allow: []string{"mixed.example:80"}})
	n.lookup = public
	if err := n.CheckURL(context.Background(), "http://mixed.example/"); err != nil {
		t.Errorf("CheckURL(mixed.example, allowed on :80) = %v; want nil", err)
	}
	if err := n.CheckURL(context.Background(), "http://mixed.example:8080/"); !errors.Is(err, ErrRefused) {
		t.Errorf("CheckURL(mixed.example:8080, allowed on :80 only) = %v; want ErrRefused", err)
	}

	n = e.notifier(Config{})
	if err := n.Reconfigure(Config{}); err != nil { // no secret
		t.Fatal(err)
	}
	if err := n.CheckURL(context.Background(), "http://public.example/"); err == nil {
		t.Error("CheckURL without a secret = nil; want callbacks refused")
	}
}

func TestControlRefusesAtDial(t *testing.T) {
	e := newEnv(t)
	n := e.notifier(Config{OwnAddrs: func() []net.IP { return []net.IP{net.ParseIP("198.51.100.1")} },
		Allow: []string{"10.9.0.0/16", "localhost:9000"}})
	for addr, wantErr := range map[string]bool{
		"127.0.0.1:80":           true,
		"[::1]:443":              true,
		"[::ffff:127.0.0.1]:80":  true,
		"169.254.169.254:80":     true,
		"[fe80::1%lo]:80":        true,
		"0.0.0.0:80":             true,
		"198.51.100.1:8080":      true,
		"not-an-address:80":      true,
		"203.0.113.7:443":        false,
		"10.9.3.4:80":            false,
		"[2001:db8::1]:80":       false,
		"[::ffff:203.0.113.7]:8": false,
	} {
		err := n.control("tcp", addr, nil)
		if (err != nil) != wantErr || (err != nil && !errors.Is(err, ErrRefused)) {
			t.Errorf("control(%q) = %v; want refused: %v", addr, err, wantErr)
		}
	}
	// A name that is not allow-listed goes through the guarded dialer: a
	// loopback answer is refused although the caller asked for a name.
	if c, err := n.dial(context.Background(), "tcp", "localhost:1"); err == nil || !errors.Is(err, ErrRefused) {
		if c != nil {
			c.Close()
		}
		t.Errorf("dial(localhost:1) = %v; want ErrRefused", err)
	}
}

func TestParseRetryAfter(t *testing.T) {
	now := time.Date(2025, 1, 2, 3, 4, 5, 0, time.UTC)
	for in, want := range map[string]time.Duration{
		"1":                             time.Second,
		" 120 ":                         2 * time.Minute,
		"0":                             0,
		"-5":                            0,
		"":                              0,
		"soon":                          0,
		"Thu, 02 Jan 2025 03:04:35 GMT": 30 * time.Second,
		"Thu, 02 Jan 2025 03:00:00 GMT": 0,
	} {
		if got := parseRetryAfter(in, now); got != want {
			t.Errorf("parseRetryAfter(%q) = %v; want %v", in, got, want)
		}
	}
}

func TestBackoff(t *testing.T) {
	n := &Notifier{retry: retryPolicy}
	for attempts := 1; attempts <= 40; attempts++ {
		ceil := min(time.Second<<min(attempts-1, 20), 10*time.Minute)
		for range 50 {
			if d := n.retry.Duration(attempts); d <= 0 || d > ceil {
				t.Fatalf("backoff(%d) = %v; want in (0, %v]", attempts, d, ceil)
			}
		}
	}
}
