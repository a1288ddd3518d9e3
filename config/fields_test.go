package config

import (
	"os"
	"reflect"
	"strings"
	"testing"
	"time"

	"github.com/BurntSushi/toml"
	"github.com/spf13/pflag"
)

// tagged exercises every kind of key the machinery knows.
type tagged struct {
	Listen string   `toml:"listen" default:":8443" zero:"error" env:"FELIX_TEST_LISTEN" flag:"listen" doc:"Where to listen."`
	Name   string   `toml:"name" default:"felix" env:"FELIX_TEST_NAME" doc:"A name. It is long enough to be wrapped over more than one line of the written file, at eighty columns."`
	Dir    string   `toml:"dir" zero:"computed" flag:"dir" doc:"Empty: worked out."`
	Hosts  []string `toml:"hosts" doc:"Extra hosts."`
	Roots  []string `toml:"roots" default:"/a,/b"`
	Limits struct {
		Max     int      `toml:"max" default:"5000" env:"FELIX_TEST_MAX" doc:"At most this many."`
		Size    int64    `toml:"size" default:"10737418240"`
		Timeout Duration `toml:"timeout" default:"60s" doc:"Line one.\nLine two."`
		Agent   bool     `toml:"agent" default:"true"`
		Secret  string   `toml:"secret"`
	} `toml:"limits" doc:"Limits of things."`
	Ignored string
}

func taggedDefaults() tagged {
	var want tagged
	want.Listen, want.Name, want.Roots = ":8443", "felix", []string{"/a", "/b"}
	want.Limits.Max, want.Limits.Size, want.Limits.Timeout.Duration, want.Limits.Agent = 5000, 10<<30, time.Minute, true
	return want
}

const taggedTemplate = `# head

# Where to listen.
listen = ":8443"

# A name. It is long enough to be wrapped over more than one line of the written
# file, at eighty columns.
name = "felix"

# Empty: worked out.
dir = ""

# Extra hosts.
# hosts = []

roots = ["/a", "/b"]

[limits]
# Limits of things.

# At most this many.
max = 5000
size = 10737418240
# Line one.
# Line two.
timeout = "60s"
agent = true
secret = ""
`

func TestTemplate(t *testing.T) {
	got := Template("# head\n", tagged{})
	if got != taggedTemplate {
		t.Errorf("Template =\n%s\nwant\n%s", got, taggedTemplate)
	}
	if Template("# head\n", &tagged{}) != got {
		t.Errorf("Template of a pointer differs from Template of the struct")
	}
	var back tagged
	if _, err := toml.Decode(got, &back); err != nil {
		t.Fatalf("template does not decode: %v", err)
	}
	if want := taggedDefaults(); !reflect.DeepEqual(back, want) {
		t.Errorf("template decodes to %+v; want %+v", back, want)
	}
}

func TestSetDefaults(t *testing.T) {
	got := tagged{Name: "x", Ignored: "kept"}
	SetDefaults(&got)
	want := taggedDefaults()
	want.Ignored = "kept"
	if !reflect.DeepEqual(got, want) {
		t.Errorf("SetDefaults = %+v; want %+v", got, want)
	}
}

func TestRender(t *testing.T) {
	in := taggedDefaults()
	in.Name = "a\"b\nname = \"x\"\x01"
	in.Hosts = []string{"h1", "h'2"}
	in.Limits.Timeout.Duration = 90 * time.Minute
	data, err := Render("# head\n", in)
	if err != nil {
		t.Fatal(err)
	}
	for _, want := range []string{"\ntimeout = \"1h30m\"\n", "\nhosts = [\"h1\", \"h'2\"]\n", "# Extra hosts.\n"} {
		if !strings.Contains(string(data), want) {
			t.Errorf("Render lacks %q:\n%s", want, data)
		}
	}
	var out tagged
	md, err := toml.Decode(string(data), &out)
	if err != nil {
		t.Fatalf("rendered file does not decode: %v\n%s", err, data)
	}
	if len(md.Undecoded()) > 0 || !reflect.DeepEqual(out, in) {
		t.Errorf("round trip = %+v (extra keys %v); want %+v", out, md.Undecoded(), in)
	}
}

func TestShortDuration(t *testing.T) {
	for d, want := range map[time.Duration]string{
		time.Minute: "1m", 24 * time.Hour: "24h", 90 * time.Minute: "1h30m", 10 * time.Second: "10s",
		time.Hour + time.Second: "1h0m1s", 0: "0s", 1500 * time.Millisecond: "1.5s",
	} {
		if got := shortDuration(d); got != want {
			t.Errorf("shortDuration(%v) = %q; want %q", d, got, want)
		}
	}
}

func TestFillZero(t *testing.T) {
	tests := []struct {
		name   string
		change func(*tagged)
		check  func(tagged) bool
	}{
		{"empty string takes the default", func(c *tagged) { c.Name = "" }, func(c tagged) bool { return c.Name == "felix" }},
		{"set string stays", func(c *tagged) { c.Name = "own" }, func(c tagged) bool { return c.Name == "own" }},
		{"zero int takes the default", func(c *tagged) { c.Limits.Max = 0 }, func(c tagged) bool { return c.Limits.Max == 5000 }},
		{"negative int takes the default", func(c *tagged) { c.Limits.Size = -1 }, func(c tagged) bool { return c.Limits.Size == 10<<30 }},
		{"zero duration takes the default", func(c *tagged) { c.Limits.Timeout.Duration = 0 }, func(c tagged) bool { return c.Limits.Timeout.Duration == time.Minute }},
		{"set duration stays", func(c *tagged) { c.Limits.Timeout.Duration = time.Second }, func(c tagged) bool { return c.Limits.Timeout.Duration == time.Second }},
		{"false stays false", func(c *tagged) { c.Limits.Agent = false }, func(c tagged) bool { return !c.Limits.Agent }},
		{"empty list stays empty", func(c *tagged) { c.Roots = nil }, func(c tagged) bool { return c.Roots == nil }},
		{"zero:error is left to Validate", func(c *tagged) { c.Listen = "" }, func(c tagged) bool { return c.Listen == "" }},
		{"zero:computed is left to Validate", func(c *tagged) { c.Dir = "" }, func(c tagged) bool { return c.Dir == "" }},
		{"no default stays empty", func(c *tagged) { c.Limits.Secret = "" }, func(c tagged) bool { return c.Limits.Secret == "" }},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			c := taggedDefaults()
			tt.change(&c)
			FillZero(&c)
			if !tt.check(c) {
				t.Errorf("FillZero = %+v", c)
			}
		})
	}
}

func TestApply(t *testing.T) {
	tests := []struct {
		name    string
		env     map[string]string
		args    []string
		want    func(*tagged)
		wantErr string
	}{
		{name: "nothing set", want: func(*tagged) {}},
		{name: "env beats file", env: map[string]string{"FELIX_TEST_LISTEN": ":1"}, want: func(c *tagged) { c.Listen = ":1" }},
		{name: "set but empty env counts", env: map[string]string{"FELIX_TEST_NAME": ""}, want: func(c *tagged) { c.Name = "" }},
		{name: "flag beats env", env: map[string]string{"FELIX_TEST_LISTEN": ":1"}, args: []string{"--listen=:2"}, want: func(c *tagged) { c.Listen = ":2" }},
		{name: "flag without env", args: []string{"--dir", "/d"}, want: func(c *tagged) { c.Dir = "/d" }},
		{name: "env of a number in a table", env: map[string]string{"FELIX_TEST_MAX": "7"}, want: func(c *tagged) { c.Limits.Max = 7 }},
		{name: "bad number", env: map[string]string{"FELIX_TEST_MAX": "many"}, wantErr: "FELIX_TEST_MAX"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			for _, k := range []string{"FELIX_TEST_LISTEN", "FELIX_TEST_NAME", "FELIX_TEST_MAX"} {
				t.Setenv(k, "") // restored at cleanup
				os.Unsetenv(k)
			}
			for k, v := range tt.env {
				t.Setenv(k, v)
			}
			fs := pflag.NewFlagSet("test", pflag.ContinueOnError)
			AddFlags(fs, &tagged{})
			if err := fs.Parse(tt.args); err != nil {
				t.Fatal(err)
			}
			got := taggedDefaults()
			err := Apply(&got, fs)
			if tt.wantErr != "" {
				if err == nil || !strings.Contains(err.Error(), tt.wantErr) {
					t.Errorf("Apply = %v; want an error naming %s", err, tt.wantErr)
				}
				return
			}
			want := taggedDefaults()
			tt.want(&want)
			if err != nil || !reflect.DeepEqual(got, want) {
				t.Errorf("Apply = %+v, %v; want %+v", got, err, want)
			}
		})
	}
}

func TestAddFlags(t *testing.T) {
	fs := pflag.NewFlagSet("x", pflag.ContinueOnError)
	AddFlags(fs, &tagged{})
	if fs.Lookup("listen") == nil || fs.Lookup("dir") == nil || fs.Lookup("name") != nil {
		t.Fatalf("AddFlags defined the wrong flags")
	}
	if u := fs.Lookup("listen").Usage; u != "Where to listen." {
		t.Errorf("--listen usage %q; want the doc line", u)
	}
}

func TestBadTagsPanic(t *testing.T) {
	for name, v := range map[string]any{
		"bad default": &struct {
			N int `toml:"n" default:"lots"`
		}{},
		"unsupported type": &struct {
			F float64 `toml:"f"`
		}{},
	} {
		t.Run(name, func(t *testing.T) {
			defer func() {
				if recover() == nil {
					t.Errorf("SetDefaults did not panic")
				}
			}()
			SetDefaults(v)
		})
	}
}
