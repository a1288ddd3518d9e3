package cli

import (
	"context"
	"fmt"
	"io"
	"net/http"
	"net/url"
	"strconv"
	"time"

	"github.com/jedib0t/go-pretty/v6/table"

	"github.com/felix-ops/felix/api/wire"
)

// cmdConfig manages stored state documents: felix config put NAME FILE |
// get NAME [--rev N] | list | history NAME | rm NAME.
func cmdConfig(ctx context.Context, args []string, w, ew io.Writer) error {
	fs, o := flags("config")
	rev := fs.Int("rev", 0, "get: this revision (default: the latest)")
	c, rest, err := parse(fs, o, args)
	if err != nil {
		return err
	}
	sub := ""
	if len(rest) > 0 {
		sub, rest = rest[0], rest[1:]
	}
	if *rev != 0 && sub != "get" {
		return fmt.Errorf("--rev is for felix config get")
	}
	switch {
	case sub == "put" && len(rest) == 2:
		doc, ok, err := readDocument(rest[1])
		if err != nil {
			return err
		}
		if !ok {
			return fmt.Errorf("%s: no such file", rest[1])
		}
		if doc, err = uploadSources(ctx, c, rest[1], doc); err != nil {
			return err
		}
		resp, err := c.send(ctx, "POST", "/api/v1/configs", wire.ConfigPut{Name: rest[0], Document: doc})
		if err != nil {
			return err
		}
		created := resp.StatusCode == http.StatusCreated
		var cfg wire.Config
		if err := c.decodeAnswer(resp, "POST", "/api/v1/configs", &cfg); err != nil {
			return err
		}
		if structured(o.Output) {
			return printAs(w, o.Output, cfg, nil)
		}
		if created {
			fmt.Fprintf(w, "config %s: revision %d (sha256 %s)\n", cfg.Name, cfg.Rev, short(cfg.SHA256))
		} else {
			fmt.Fprintf(w, "config %s: unchanged at revision %d (sha256 %s)\n", cfg.Name, cfg.Rev, short(cfg.SHA256))
		}
		return nil
	case sub == "get" && len(rest) == 1:
		path := "/api/v1/configs/" + url.PathEscape(rest[0])
		if *rev != 0 {
			path += "?rev=" + strconv.Itoa(*rev)
		}
		var cfg wire.Config
		if err := c.do(ctx, "GET", path, nil, &cfg); err != nil {
			return err
		}
		if structured(o.Output) {
			return printAs(w, o.Output, cfg, nil)
		}
		if cfg.Document != nil {
			io.WriteString(w, *cfg.Document) // byte for byte: it may be saved and put again
		}
		return nil
	case sub == "list" && len(rest) == 0:
		var list wire.ConfigList
		if err := c.do(ctx, "GET", "/api/v1/configs", nil, &list); err != nil {
			return err
		}
		if structured(o.Output) {
			return printAs(w, o.Output, list, list.Configs)
		}
		t := newTable(w, "NAME", "REV", "REVISIONS", "SHA256", "BY", "CREATED")
		for _, cfg := range list.Configs {
			t.AppendRow(table.Row{cfg.Name, cfg.Rev, cfg.Revisions, short(cfg.SHA256), cfg.CreatedBy, cfg.CreatedAt.Local().Format(time.DateTime)})
		}
		t.Render()
		return nil
	case sub == "history" && len(rest) == 1:
		var hist wire.ConfigHistory
		if err := c.do(ctx, "GET", "/api/v1/configs/"+url.PathEscape(rest[0])+"/history", nil, &hist); err != nil {
			return err
		}
		if structured(o.Output) {
			return printAs(w, o.Output, hist, hist.Revisions)
		}
		t := newTable(w, "REV", "SHA256", "BY", "CREATED")
		for _, cfg := range hist.Revisions {
			t.AppendRow(table.Row{cfg.Rev, short(cfg.SHA256), cfg.CreatedBy, cfg.CreatedAt.Local().Format(time.DateTime)})
		}
		t.Render()
		return nil
	case sub == "rm" && len(rest) == 1:
		if err := c.do(ctx, "DELETE", "/api/v1/configs/"+url.PathEscape(rest[0]), nil, nil); err != nil {
			return err
		}
		fmt.Fprintf(w, "config %s: removed with every revision\n", rest[0])
		return nil
	}
	return fmt.Errorf("want felix config put NAME FILE | get NAME [--rev N] | list | history NAME | rm NAME")
}

// short is the first 12 characters of a sha256, as tables show it.
func short(sha string) string { return sha[:min(12, len(sha))] }
