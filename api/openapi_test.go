package api

import (
	"io"
	"log/slog"
	"net/http"
	"net/http/httptest"
	"regexp"
	"slices"
	"sort"
	"strings"
	"testing"

	"github.com/gin-gonic/gin"
	"github.com/goccy/go-yaml"
)

// openAPIMethods are the keys of an OpenAPI path item that are operations.
var openAPIMethods = []string{"get", "put", "post", "delete", "options", "head", "patch", "trace"}

// openAPIDocument parses the embedded document strictly (duplicate keys are
// errors) into generic maps.
func openAPIDocument(t *testing.T) map[string]any {
	t.Helper()
	var doc map[string]any
	if err := yaml.Unmarshal(openAPIDoc, &doc); err != nil {
		t.Fatalf("api/openapi.yaml does not parse: %v", err)
	}
	return doc
}

// asMap returns v as a map with string keys, or nil.
func asMap(v any) map[string]any {
	switch m := v.(type) {
	case map[string]any:
		return m
	case map[any]any:
		out := make(map[string]any, len(m))
		for k, v := range m {
			ks, ok := k.(string)
			if !ok {
				return nil
			}
			out[ks] = v
		}
		return out
	}
	return nil
}

// ginParam matches Gin's path parameters, :id and *path.
var ginParam = regexp.MustCompile(`[:*]([A-Za-z0-9_]+)`)

// ginRoutes returns "METHOD /path" for every route of the handler, with
// parameters written the OpenAPI way ({id}).
func ginRoutes(t *testing.T, h http.Handler) map[string]bool {
	t.Helper()
	eng, ok := h.(*gin.Engine)
	if !ok {
		t.Fatalf("Handler() returns %T, want *gin.Engine", h)
	}
	out := map[string]bool{}
	for _, r := range eng.Routes() {
		out[r.Method+" "+ginParam.ReplaceAllString(r.Path, "{$1}")] = true
	}
	if len(out) == 0 {
		t.Fatal("the engine has no routes")
	}
	return out
}

func testServer() *Server {
	// No Store and no Jobs: building the handler must not need them, and
	// the requests made here are answered before a handler touches them
	// (or fail into the recovery middleware, which answers 500).
	return &Server{Log: slog.New(slog.NewTextHandler(io.Discard, nil))}
}

// TestOpenAPIRoutes checks that the document and the Gin routes are the same
// set of (method, path).
func TestOpenAPIRoutes(t *testing.T) {
	routes := ginRoutes(t, testServer().Handler())
	for r := range routes {
		if strings.Contains(r, " /ui") {
			delete(routes, r) // the web dashboard, not the API: ui_test.go
		}
	}
	doc := openAPIDocument(t)
	paths := asMap(doc["paths"])
	if len(paths) == 0 {
		t.Fatal("the document has no paths")
	}
	documented := map[string]bool{}
	for p, item := range paths {
		m := asMap(item)
		if m == nil {
			t.Errorf("path %s: not a mapping", p)
			continue
		}
		for k := range m {
			switch {
			case slices.Contains(openAPIMethods, k):
				documented[strings.ToUpper(k)+" "+p] = true
			case k == "parameters", k == "summary", k == "description", k == "servers", strings.HasPrefix(k, "x-"):
			default:
				t.Errorf("path %s: unexpected key %q", p, k)
			}
		}
	}
	var missing, extra []string
	for r := range routes {
		if !documented[r] {
			missing = append(missing, r)
		}
	}
	for d := range documented {
		if !routes[d] {
			extra = append(extra, d)
		}
	}
	sort.Strings(missing)
	sort.Strings(extra)
	for _, r := range missing {
		t.Errorf("route %s is not in api/openapi.yaml", r)
	}
	for _, d := range extra {
		t.Errorf("api/openapi.yaml documents %s, which is not a route", d)
	}
}

// TestOpenAPIDocument checks the document's shape: version, every $ref
// resolving, path parameters declared, responses present.
func TestOpenAPIDocument(t *testing.T) {
	doc := openAPIDocument(t)
	if v, _ := doc["openapi"].(string); v != "3.0.3" {
		t.Errorf("openapi = %v, want 3.0.3", doc["openapi"])
	}
	info := asMap(doc["info"])
	if info == nil || info["title"] == nil || info["version"] != "1" {
		t.Errorf("info = %v, want a title and version \"1\"", doc["info"])
	}
	components := asMap(doc["components"])
	if components == nil || len(asMap(components["schemas"])) == 0 {
		t.Fatal("the document has no components/schemas")
	}
	if s := asMap(asMap(components["securitySchemes"])["bearerAuth"]); s["type"] != "http" || s["scheme"] != "bearer" {
		t.Errorf("components/securitySchemes/bearerAuth = %v, want type http, scheme bearer", s)
	}

	// Every $ref names an existing component.
	refs := 0
	var walk func(where string, v any)
	walk = func(where string, v any) {
		if m := asMap(v); m != nil {
			for k, child := range m {
				if k == "$ref" {
					refs++
					ref, _ := child.(string)
					parts := strings.Split(ref, "/")
					if len(parts) != 4 || parts[0] != "#" || parts[1] != "components" {
						t.Errorf("%s: $ref %q: want '#/components/SECTION/NAME'", where, ref)
						continue
					}
					if _, ok := asMap(components[parts[2]])[parts[3]]; !ok {
						t.Errorf("%s: $ref %q names no component", where, ref)
					}
					continue
				}
				walk(where+"/"+k, child)
			}
			return
		}
		if l, ok := v.([]any); ok {
			for _, child := range l {
				walk(where+"[]", child)
			}
		}
	}
	walk("", doc)
	if refs == 0 {
		t.Error("the document has no $ref at all")
	}

	// Every {param} of a path is a declared path parameter, and every
	// operation has responses.
	resolve := func(v any) map[string]any {
		m := asMap(v)
		if ref, ok := m["$ref"].(string); ok {
			parts := strings.Split(ref, "/")
			if len(parts) == 4 {
				return asMap(asMap(components[parts[2]])[parts[3]])
			}
		}
		return m
	}
	pathParams := func(params any) map[string]bool {
		out := map[string]bool{}
		l, _ := params.([]any)
		for _, p := range l {
			pm := resolve(p)
			if pm["in"] == "path" {
				if pm["required"] != true {
					t.Errorf("path parameter %v must be required", pm["name"])
				}
				name, _ := pm["name"].(string)
				out[name] = true
			}
		}
		return out
	}
	openAPIParam := regexp.MustCompile(`\{([^}]+)\}`)
	for p, item := range asMap(doc["paths"]) {
		im := asMap(item)
		shared := pathParams(im["parameters"])
		for _, method := range openAPIMethods {
			op := asMap(im[method])
			if op == nil {
				continue
			}
			declared := pathParams(op["parameters"])
			for k := range shared {
				declared[k] = true
			}
			for _, m := range openAPIParam.FindAllStringSubmatch(p, -1) {
				if !declared[m[1]] {
					t.Errorf("%s %s: path parameter %s is not declared", method, p, m[1])
				}
				delete(declared, m[1])
			}
			for k := range declared {
				t.Errorf("%s %s: path parameter %s is not in the path", method, p, k)
			}
			if len(asMap(op["responses"])) == 0 {
				t.Errorf("%s %s: no responses", method, p)
			}
		}
	}
}

// TestOpenAPISecurity checks that the operations the document marks public
// (security: []) are exactly those Gin serves without a bearer token.
func TestOpenAPISecurity(t *testing.T) {
	// GET /healthz reaches the nil Store and panics into the recovery
	// middleware; keep Gin from printing the stack (it takes its writer
	// when the engine is built). No test here runs in parallel.
	saved := gin.DefaultErrorWriter
	gin.DefaultErrorWriter = io.Discard
	engine := testServer().Handler()
	gin.DefaultErrorWriter = saved
	routes := ginRoutes(t, engine)
	h := CheckedByOpenAPI(t, engine)
	doc := openAPIDocument(t)
	if global, _ := doc["security"].([]any); len(global) == 0 {
		t.Error("the document has no global security requirement")
	}
	paths := asMap(doc["paths"])
	for r := range routes {
		method, path, _ := strings.Cut(r, " ")
		op := asMap(asMap(paths[path])[strings.ToLower(method)])
		if op == nil {
			continue // TestOpenAPIRoutes reports it
		}
		sec, overridden := op["security"]
		list, isList := sec.([]any)
		public := overridden && isList && len(list) == 0

		req := httptest.NewRequest(method, strings.ReplaceAll(strings.ReplaceAll(path, "{", ""), "}", ""), strings.NewReader(""))
		w := httptest.NewRecorder()
		h.ServeHTTP(w, req)
		needsToken := w.Code == http.StatusUnauthorized && strings.Contains(w.Body.String(), "missing bearer token")
		switch {
		case needsToken && public:
			t.Errorf("%s: needs a bearer token but the document says security: []", r)
		case !needsToken && !public:
			t.Errorf("%s: served without a token (status %d) but the document does not say security: []", r, w.Code)
		case needsToken && overridden:
			t.Errorf("%s: overrides the global security; it should inherit bearerAuth", r)
		}
	}
}

// TestOpenAPIServed checks that the document is served, without a token.
func TestOpenAPIServed(t *testing.T) {
	h := CheckedByOpenAPI(t, testServer().Handler())
	req := httptest.NewRequest(http.MethodGet, "/api/v1/openapi.yaml", nil)
	w := httptest.NewRecorder()
	h.ServeHTTP(w, req)
	if w.Code != http.StatusOK {
		t.Fatalf("GET /api/v1/openapi.yaml: status %d, want 200; body %q", w.Code, w.Body.String())
	}
	if ct := w.Header().Get("Content-Type"); !strings.HasPrefix(ct, "application/yaml") {
		t.Errorf("Content-Type = %q, want application/yaml", ct)
	}
	if !strings.HasPrefix(w.Body.String(), "openapi:") {
		t.Errorf("body starts %q, want \"openapi:\"", w.Body.String()[:min(40, w.Body.Len())])
	}
	if w.Body.String() != string(openAPIDoc) {
		t.Error("the served document is not the embedded api/openapi.yaml")
	}
}
