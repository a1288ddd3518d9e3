package api_test

import (
	"bytes"
	"encoding/json"
	"mime/multipart"
	"net/http"
	"net/textproto"
	"strings"
	"testing"

	"github.com/felix-ops/felix/api/wire"
)

// multipartBody builds a multipart exec: a request part (JSON of req, or
// raw when req is a string; application/json as the document's encoding
// says) and, if file is not nil, a file part.
func multipartBody(t *testing.T, req any, file []byte, extra ...string) (string, []byte) {
	t.Helper()
	var buf bytes.Buffer
	mw := multipart.NewWriter(&buf)
	if req != nil {
		w, _ := mw.CreatePart(textproto.MIMEHeader{
			"Content-Disposition": {`form-data; name="request"`},
			"Content-Type":        {"application/json"},
		})
		if s, ok := req.(string); ok {
			w.Write([]byte(s))
		} else {
			json.NewEncoder(w).Encode(req)
		}
	}
	if file != nil {
		w, _ := mw.CreateFormFile("file", "upload")
		w.Write(file)
	}
	for _, name := range extra {
		w, _ := mw.CreateFormField(name)
		w.Write([]byte("x"))
	}
	mw.Close()
	return mw.FormDataContentType(), buf.Bytes()
}

func (h *harness) postMultipart(ctype string, body []byte, query string) (int, []byte) {
	h.t.Helper()
	req, _ := http.NewRequest("POST", h.srv.URL+"/api/v1/exec"+query, bytes.NewReader(body))
	req.Header.Set("Content-Type", ctype)
	req.Header.Set("Authorization", "Bearer "+h.admin)
	resp, err := h.client(nil).Do(req)
	if err != nil {
		h.t.Fatal(err)
	}
	defer resp.Body.Close()
	var out bytes.Buffer
	out.ReadFrom(resp.Body)
	return resp.StatusCode, out.Bytes()
}

func TestExecMultipart(t *testing.T) {
	h := newHarness(t)
	h.addMinion("web1", "127.0.0.9:4510", true, nil)
	content := bytes.Repeat([]byte{0, 1, 2, 255}, 1000)
	ctype, body := multipartBody(t, wire.ExecRequest{JobOptions: wire.JobOptions{Targets: []string{"web1"}}, CmdType: "file", CmdLine: "sha256sum blob", FileName: "blob"}, content)
	calls := len(h.fake.Calls())
	status, out := h.postMultipart(ctype, body, "?wait=10s")
	if status != http.StatusOK {
		t.Fatalf("multipart exec = %d %s", status, out)
	}
	got := h.fake.Calls()[calls:]
	if len(got) != 1 || !bytes.Equal(got[0].Content, content) || got[0].Cmd.File.Name != "blob" ||
		got[0].Cmd.File.Size != int64(len(content)) {
		t.Fatalf("transport got %d calls; want one with the uploaded content byte-exact", len(got))
	}

	tests := []struct {
		name   string
		req    any
		file   []byte
		extra  []string
		status int
		want   string
	}{
		{"no request part", nil, content, nil, 400, "no request part"},
		{"unknown part", wire.ExecRequest{JobOptions: wire.JobOptions{Targets: []string{"web1"}}, CmdType: "file", CmdLine: "x"}, content, []string{"other"}, 400, "unknown part"},
		{"content twice", wire.ExecRequest{JobOptions: wire.JobOptions{Targets: []string{"web1"}}, CmdType: "file", CmdLine: "x", File: "y"}, content, nil, 400, "once"},
		{"file part with a line command", wire.ExecRequest{JobOptions: wire.JobOptions{Targets: []string{"web1"}}, CmdLine: "x"}, content, nil, 400, "file"},
		{"script without content", wire.ExecRequest{JobOptions: wire.JobOptions{Targets: []string{"web1"}}, CmdType: "script", CmdLine: "./x"}, nil, nil, 400, "file is required"},
		{"malformed request part", `{"cmd_line": `, content, nil, 400, "malformed JSON"},
		{"over the limit", wire.ExecRequest{JobOptions: wire.JobOptions{Targets: []string{"web1"}}, CmdType: "file", CmdLine: "x"},
			bytes.Repeat([]byte("x"), maxFileSize+1), nil, 413, "limit"},
		{"targets match nothing", wire.ExecRequest{JobOptions: wire.JobOptions{Targets: []string{"zzz*"}}, CmdType: "file", CmdLine: "x", FileName: "x"}, content, nil, 404, "zzz*"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			before := h.dump()
			calls := len(h.fake.Calls())
			ctype, body := multipartBody(t, tt.req, tt.file, tt.extra...)
			status, out := h.postMultipart(ctype, body, "")
			if status != tt.status || !strings.Contains(string(out), tt.want) {
				t.Errorf("= %d %s; want %d mentioning %q", status, out, tt.status, tt.want)
			}
			h.wantUnchanged(tt.name, before)
			if n := len(h.fake.Calls()); n != calls {
				t.Errorf("transport called %d times; want none", n-calls)
			}
			if p := h.payloads(); len(p) != 1 { // the first test's job
				t.Errorf("payload files = %v; want only the first job's", p)
			}
		})
	}
}
