package api

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"flag"
	"fmt"
	"io"
	"net/http"
	"os"
	"slices"
	"strconv"
	"strings"
	"sync"
	"testing"

	"github.com/getkin/kin-openapi/openapi3"
	"github.com/getkin/kin-openapi/openapi3filter"
	"github.com/getkin/kin-openapi/routers"
	"github.com/getkin/kin-openapi/routers/legacy"
)

// This file checks api/openapi.yaml against what the server really does.
// Every test server is built through CheckedByOpenAPI, which validates each
// request and each answer against the document (with kin-openapi), so a
// field, status or content type the code and the document disagree on
// fails the test that exercised it. TestMain then checks that the tests,
// taken together, saw every documented route and status (openAPIUnchecked).

// checkCap bounds the response bodies the check holds, and requestCap the
// request bodies (the JSON limit: a larger body is a 413 whatever it
// holds); larger bodies are passed through and their content not
// validated.
const (
	checkCap   = 32 << 20
	requestCap = maxBody
)

// openAPISpec is the document as the checks use it, and what they saw.
type openAPISpec struct {
	doc    *openapi3.T
	router routers.Router

	mu   sync.Mutex
	seen map[string]int // "METHOD /path STATUS" → answers validated; guarded by mu
}

var loadSpec = sync.OnceValues(func() (*openAPISpec, error) {
	openapi3.DefineIPv4Format()
	openapi3.DefineIPv6Format()
	doc, err := openapi3.NewLoader().LoadFromData(openAPIDoc)
	if err != nil {
		return nil, fmt.Errorf("load api/openapi.yaml: %w", err)
	}
	// The servers name the default address; the tests' servers listen
	// elsewhere, and routes are matched by path alone.
	doc.Servers = nil
	router, err := legacy.NewRouter(doc, openapi3.EnableSchemaFormatValidation(), openapi3.EnableSchemaPatternValidation())
	if err != nil {
		return nil, fmt.Errorf("api/openapi.yaml: %w", err)
	}
	strictResponses(doc)
	if ev := doc.Components.Schemas["Event"]; ev == nil || ev.Value == nil {
		return nil, errors.New("api/openapi.yaml: no components/schemas/Event")
	} else {
		openapi3filter.RegisterBodyDecoder("text/event-stream", sseDecoder(ev.Value))
	}
	return &openAPISpec{doc: doc, router: router, seen: map[string]int{}}, nil
})

// strictResponses makes every object schema of a response refuse fields it
// does not list, unless it says otherwise: a field the code sends but the
// document does not name is drift too. The document itself leaves them
// open so that clients accept fields added later.
func strictResponses(doc *openapi3.T) {
	seen := map[*openapi3.Schema]bool{}
	var walk func(ref *openapi3.SchemaRef, inAllOf bool)
	walk = func(ref *openapi3.SchemaRef, inAllOf bool) {
		if ref == nil || ref.Value == nil || seen[ref.Value] {
			return
		}
		s := ref.Value
		seen[s] = true
		if !inAllOf && len(s.Properties) > 0 && s.AdditionalProperties.Has == nil && s.AdditionalProperties.Schema == nil {
			no := false
			s.AdditionalProperties.Has = &no
		}
		for _, p := range s.Properties {
			walk(p, false)
		}
		walk(s.Items, false)
		walk(s.AdditionalProperties.Schema, false)
		for _, l := range [][]*openapi3.SchemaRef{s.OneOf, s.AnyOf} {
			for _, x := range l {
				walk(x, false)
			}
		}
		for _, x := range s.AllOf {
			walk(x, true)
		}
	}
	for _, item := range doc.Paths.Map() {
		for _, op := range item.Operations() {
			for _, resp := range op.Responses.Map() {
				if resp.Value == nil {
					continue
				}
				for _, mt := range resp.Value.Content {
					walk(mt.Schema, false)
				}
			}
		}
	}
}

// sseDecoder reads a text/event-stream answer: every complete frame's data
// must be an Event of the frame's type, with the frame's id as its seq,
// except the last frame, "end" with {}. The body stays a string.
func sseDecoder(event *openapi3.Schema) openapi3filter.BodyDecoder {
	return func(body io.Reader, _ http.Header, _ *openapi3.SchemaRef, _ openapi3filter.EncodingFn) (any, error) {
		b, err := io.ReadAll(body)
		if err != nil {
			return nil, err
		}
		frames := strings.Split(string(b), "\n\n")
		frames = frames[:len(frames)-1] // after the last blank line: nothing, or a frame cut off by a hang-up
		for i, f := range frames {
			var id, typ, data string
			for _, line := range strings.Split(f, "\n") {
				switch {
				case strings.HasPrefix(line, ":"): // a comment (keep-alive)
				case strings.HasPrefix(line, "id: "):
					id = strings.TrimPrefix(line, "id: ")
				case strings.HasPrefix(line, "event: "):
					typ = strings.TrimPrefix(line, "event: ")
				case strings.HasPrefix(line, "data: "):
					data += strings.TrimPrefix(line, "data: ")
				default:
					return nil, fmt.Errorf("frame %d: unexpected line %q", i, line)
				}
			}
			if typ == "" && data == "" {
				continue // a keep-alive alone
			}
			if typ == "end" {
				if data != "{}" || id != "" {
					return nil, fmt.Errorf("frame %d: end frame %q; want data {} and no id", i, f)
				}
				continue
			}
			var v map[string]any
			if err := json.Unmarshal([]byte(data), &v); err != nil {
				return nil, fmt.Errorf("frame %d: data %q: %w", i, data, err)
			}
			if err := event.VisitJSON(v, openapi3.VisitAsResponse(), openapi3.EnableFormatValidation()); err != nil {
				return nil, fmt.Errorf("frame %d: data %s is not an Event: %w", i, data, err)
			}
			if v["type"] != typ || fmt.Sprint(v["seq"]) != id {
				return nil, fmt.Errorf("frame %d: id %q, event %q; want the data's seq and type (%s)", i, id, typ, data)
			}
		}
		return string(b), nil
	}
}

// CheckedByOpenAPI wraps a test server's handler: every request and answer
// that passes through it is checked against api/openapi.yaml, and any
// disagreement is an error of t.
//
//   - An answer must be documented for the route and status, with the
//     content type and schema the document gives (fields the document does
//     not name included, see strictResponses).
//   - A request the document refuses must be refused (4xx): the document
//     must not be laxer than the server admits nor claim limits it lacks.
//   - A path the document does not have must answer the JSON 404 or 405.
func CheckedByOpenAPI(t testing.TB, h http.Handler) http.Handler {
	t.Helper()
	spec, err := loadSpec()
	if err != nil {
		t.Fatal(err)
	}
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		reqBody, rest, err := readCapped(r.Body)
		if err != nil {
			t.Errorf("%s %s: read the request body: %v", r.Method, r.URL, err)
		}
		if r.Body != nil {
			var rd io.Reader = bytes.NewReader(reqBody)
			if rest != nil {
				rd = io.MultiReader(rd, rest)
			}
			r.Body = readCloser{rd, r.Body}
		}
		rec := &recorder{ResponseWriter: w}
		h.ServeHTTP(rec, r)
		if err := spec.check(r, reqBody, rest == nil, rec); err != nil {
			t.Errorf("api/openapi.yaml and the server disagree: %s %s → %d: %v", r.Method, r.URL.RequestURI(), rec.status(), err)
		}
	})
}

// readCapped reads up to requestCap bytes of body; rest is what remains
// when there is more (nil when body was read to its end).
func readCapped(body io.Reader) (b []byte, rest io.Reader, err error) {
	if body == nil {
		return nil, nil, nil
	}
	b, err = io.ReadAll(io.LimitReader(body, requestCap+1))
	if len(b) > requestCap {
		return b, body, err
	}
	return b, nil, err
}

type readCloser struct {
	io.Reader
	io.Closer
}

// recorder passes an answer through and keeps its status, header and (up
// to checkCap) body.
type recorder struct {
	http.ResponseWriter
	code      int
	header    http.Header // as the header was when it was written
	body      bytes.Buffer
	truncated bool
}

func (r *recorder) WriteHeader(code int) {
	if r.code == 0 {
		r.code = code
		r.header = r.ResponseWriter.Header().Clone()
	}
	r.ResponseWriter.WriteHeader(code)
}

func (r *recorder) Write(b []byte) (int, error) {
	if r.code == 0 {
		r.WriteHeader(http.StatusOK)
	}
	if r.body.Len()+len(b) > checkCap {
		r.truncated = true
	} else {
		r.body.Write(b)
	}
	return r.ResponseWriter.Write(b)
}

// Flush keeps Server-Sent Events flowing.
func (r *recorder) Flush() {
	if r.code == 0 {
		r.WriteHeader(http.StatusOK)
	}
	if f, ok := r.ResponseWriter.(http.Flusher); ok {
		f.Flush()
	}
}

// Unwrap lets http.ResponseController reach the connection.
func (r *recorder) Unwrap() http.ResponseWriter { return r.ResponseWriter }

func (r *recorder) status() int {
	if r.code == 0 {
		return http.StatusOK
	}
	return r.code
}

// bearerPresent stands in for the API's authentication: the document's
// security requirement holds when a bearer token is sent; whether the
// token is good is the server's business (and a 401 a documented answer).
func bearerPresent(_ context.Context, in *openapi3filter.AuthenticationInput) error {
	h := in.RequestValidationInput.Request.Header.Get("Authorization")
	if tok, ok := strings.CutPrefix(h, "Bearer "); !ok || strings.TrimSpace(tok) == "" {
		return errors.New("no bearer token")
	}
	return nil
}

// check compares one exchange with the document.
func (s *openAPISpec) check(r *http.Request, reqBody []byte, wholeBody bool, rec *recorder) error {
	status := rec.status()
	header := rec.header
	if header == nil {
		header = rec.Header()
	}
	req := r.Clone(context.Background())
	req.Body = io.NopCloser(bytes.NewReader(reqBody))
	route, params, err := s.router.FindRoute(req)
	if p := req.URL.Path; p != "/" && (strings.Contains(p, "//") || strings.HasSuffix(p, "/")) {
		// The router forgives a trailing slash and matches an empty
		// parameter; the document's paths have neither.
		err = fmt.Errorf("path %q has an empty segment", p)
	}
	if err != nil {
		s.saw(fmt.Sprintf("no route %d", status))
		if status != http.StatusNotFound && status != http.StatusMethodNotAllowed {
			return fmt.Errorf("not a documented route (%v); want the JSON 404 or 405", err)
		}
		return wantErrorBody(header, rec.body.Bytes())
	}
	opts := &openapi3filter.Options{
		AuthenticationFunc:    bearerPresent,
		ExcludeRequestBody:    !wholeBody,
		ExcludeResponseBody:   rec.truncated,
		IncludeResponseStatus: true,
		SkipSettingDefaults:   true,
	}
	in := &openapi3filter.RequestValidationInput{Request: req, PathParams: params, Route: route, Options: opts}
	if reqErr := openapi3filter.ValidateRequest(context.Background(), in); reqErr != nil && status < 400 {
		return fmt.Errorf("the document refuses the request, but the server took it: %v", reqErr)
	}
	if route.Operation.Responses.Status(status) == nil {
		return fmt.Errorf("status %d is not documented for %s %s", status, route.Method, route.Path)
	}
	out := &openapi3filter.ResponseValidationInput{RequestValidationInput: in, Status: status, Header: header, Options: opts}
	out.SetBodyBytes(rec.body.Bytes())
	if err := openapi3filter.ValidateResponse(context.Background(), out); err != nil {
		return fmt.Errorf("the answer %.300q does not match the document: %v", rec.body.Bytes(), err)
	}
	s.saw(fmt.Sprintf("%s %s %d", route.Method, route.Path, status))
	return nil
}

func (s *openAPISpec) saw(key string) {
	s.mu.Lock()
	defer s.mu.Unlock()
	s.seen[key]++
}

// wantErrorBody checks an answer is the JSON {"error": "..."}.
func wantErrorBody(header http.Header, body []byte) error {
	if ct := header.Get("Content-Type"); !strings.HasPrefix(ct, "application/json") {
		return fmt.Errorf("content type %q; want application/json", ct)
	}
	var e map[string]any
	if err := json.Unmarshal(body, &e); err != nil {
		return fmt.Errorf("body %q is not JSON: %v", body, err)
	}
	if msg, ok := e["error"].(string); !ok || msg == "" || len(e) != 1 {
		return fmt.Errorf("body %s; want {\"error\": \"<message>\"}", body)
	}
	return nil
}

// openAPINotChecked are documented answers no test provokes, and why.
var openAPINotChecked = map[string]string{
	"500": "an internal error needs a failing store or engine",
}

// openAPIUnchecked lists the documented operations and answers that no
// test got (and validated), except those openAPINotChecked excuses.
func openAPIUnchecked() []string {
	spec, err := loadSpec()
	if err != nil {
		return []string{err.Error()}
	}
	spec.mu.Lock()
	defer spec.mu.Unlock()
	var missing []string
	for path, item := range spec.doc.Paths.Map() {
		for method, op := range item.Operations() {
			any2xx := false
			for code := range op.Responses.Map() {
				key := fmt.Sprintf("%s %s %s", method, path, code)
				if spec.seen[key] > 0 {
					if n, _ := strconv.Atoi(code); n >= 200 && n < 300 {
						any2xx = true
					}
					continue
				}
				if _, ok := openAPINotChecked[code]; ok {
					continue
				}
				if _, ok := openAPINotChecked[key]; ok {
					continue
				}
				missing = append(missing, key)
			}
			if !any2xx {
				missing = append(missing, fmt.Sprintf("%s %s: no successful answer", method, path))
			}
		}
	}
	slices.Sort(missing)
	return missing
}

// TestMain runs the tests, then — when they all ran and passed — checks
// that together they validated every documented answer.
func TestMain(m *testing.M) {
	flag.Parse()
	code := m.Run()
	if code == 0 && flag.Lookup("test.run").Value.String() == "" && flag.Lookup("test.skip").Value.String() == "" {
		if missing := openAPIUnchecked(); len(missing) > 0 {
			fmt.Fprintf(os.Stderr, "--- FAIL: the API tests never got (and checked against api/openapi.yaml) these documented answers:\n")
			for _, m := range missing {
				fmt.Fprintf(os.Stderr, "\t%s\n", m)
			}
			fmt.Fprintln(os.Stderr, "FAIL")
			code = 1
		}
	}
	os.Exit(code)
}

// OpenAPIRefuses returns why api/openapi.yaml refuses the request (its
// route, parameters, security and body), or nil when the document takes
// it. It reads the request's body.
func OpenAPIRefuses(r *http.Request) error {
	spec, err := loadSpec()
	if err != nil {
		return err
	}
	route, params, err := spec.router.FindRoute(r)
	if err != nil {
		return err
	}
	opts := &openapi3filter.Options{AuthenticationFunc: bearerPresent, SkipSettingDefaults: true}
	return openapi3filter.ValidateRequest(context.Background(), &openapi3filter.RequestValidationInput{
		Request: r, PathParams: params, Route: route, Options: opts})
}
