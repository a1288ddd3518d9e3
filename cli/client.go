package cli

import (
	"bytes"
	"context"
	"crypto/tls"
	"encoding/json"
	"fmt"
	"io"
	"net/http"
	"net/url"
	"strings"

	"github.com/felix-ops/felix/api/wire"
	"github.com/felix-ops/felix/pki"
)

// client talks to the master's REST API.
type client struct {
	base  string
	token string
	http  *http.Client
}

func newClient(o options) (*client, error) {
	if o.Master == "" {
		return nil, fmt.Errorf("no master URL: set --master, FELIX_MASTER or master in %s", o.ConfigPath)
	}
	u, err := url.Parse(o.Master)
	if err != nil || u.Scheme != "https" || u.Host == "" {
		return nil, fmt.Errorf("master %q: want https://host:port", o.Master)
	}
	if o.Token == "" {
		return nil, fmt.Errorf("no API token: set --token, FELIX_TOKEN or token in %s", o.ConfigPath)
	}
	tr := http.DefaultTransport.(*http.Transport).Clone()
	if o.Fingerprint != "" {
		fp, err := pki.ParseFingerprint(o.Fingerprint)
		if err != nil {
			return nil, fmt.Errorf("master fingerprint: %w", err)
		}
		tr.TLSClientConfig = pki.ClientConfig(nil, fp)
	} else {
		tr.TLSClientConfig = &tls.Config{MinVersion: tls.VersionTLS12}
	}
	return &client{base: strings.TrimSuffix(o.Master, "/"), token: o.Token, http: &http.Client{Transport: tr}}, nil
}

// apiError is an error answer from the master.
type apiError struct {
	Status int
	Msg    string
}

func (e *apiError) Error() string { return fmt.Sprintf("%s (HTTP %d)", e.Msg, e.Status) }

// do sends a JSON request and decodes the JSON answer into out.
func (c *client) do(ctx context.Context, method, path string, in, out any) error {
	resp, err := c.send(ctx, method, path, in)
	if err != nil {
		return err
	}
	return c.decodeAnswer(resp, method, path, out)
}

// doBody sends body as is with its content type and decodes the JSON
// answer into out.
func (c *client) doBody(ctx context.Context, method, path, contentType string, body io.Reader, out any) error {
	resp, err := c.sendBody(ctx, method, path, contentType, body)
	if err != nil {
		return err
	}
	return c.decodeAnswer(resp, method, path, out)
}

// decodeAnswer reads a 2xx answer into out and closes it.
func (c *client) decodeAnswer(resp *http.Response, method, path string, out any) error {
	defer resp.Body.Close()
	data, err := io.ReadAll(resp.Body)
	if err != nil {
		return fmt.Errorf("%s %s: read answer: %w", method, path, err)
	}
	if out == nil {
		return nil
	}
	if err := json.Unmarshal(data, out); err != nil {
		return fmt.Errorf("%s %s: bad answer: %w", method, path, err)
	}
	return nil
}

// stream GETs path and returns the open answer of a 2xx status for the
// caller to read as it arrives (Server-Sent Events) and close.
func (c *client) stream(ctx context.Context, path string) (io.ReadCloser, error) {
	resp, err := c.send(ctx, "GET", path, nil)
	if err != nil {
		return nil, err
	}
	return resp.Body, nil
}

// send sends a request with in as its JSON body. It returns the answer of a
// 2xx status with its body unread, and an *apiError for any other status.
func (c *client) send(ctx context.Context, method, path string, in any) (*http.Response, error) {
	if in == nil {
		return c.sendBody(ctx, method, path, "", nil)
	}
	b, err := json.Marshal(in)
	if err != nil {
		return nil, err
	}
	return c.sendBody(ctx, method, path, "application/json", bytes.NewReader(b))
}

// sendBody is send with a body of any content type (none when body is nil).
func (c *client) sendBody(ctx context.Context, method, path, contentType string, body io.Reader) (*http.Response, error) {
	req, err := http.NewRequestWithContext(ctx, method, c.base+path, body)
	if err != nil {
		return nil, err
	}
	req.Header.Set("Authorization", "Bearer "+c.token)
	if body != nil {
		req.Header.Set("Content-Type", contentType)
	}
	resp, err := c.http.Do(req)
	if err != nil {
		if strings.Contains(err.Error(), "certificate") {
			return nil, fmt.Errorf("%s %s: %w (pin the master with --master-fingerprint; master start prints it)", method, path, err)
		}
		return nil, fmt.Errorf("%s %s: %w", method, path, err)
	}
	if resp.StatusCode/100 == 2 {
		return resp, nil
	}
	defer resp.Body.Close()
	data, err := io.ReadAll(io.LimitReader(resp.Body, 1<<20))
	if err != nil {
		return nil, fmt.Errorf("%s %s: read answer: %w", method, path, err)
	}
	var e wire.Error
	if json.Unmarshal(data, &e) != nil || e.Error == "" {
		e.Error = strings.TrimSpace(string(data))
	}
	return nil, &apiError{Status: resp.StatusCode, Msg: e.Error}
}
