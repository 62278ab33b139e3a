package couchdb

import (
	"fmt"
	"strings"
	"testing"

	"github.com/runbookdev/runbook/internal/testenv"
	"github.com/runbookdev/runbook/sdk"
)

func TestCheck(t *testing.T) {
	t.Parallel()
	s, _ := servers(t)
	db := dbName(t, "cozy")
	c := client(t, s)
	seed(t, c, db, smallDocs(7))
	p := sdk.Local(New())
	ctx := tctx(t)

	t.Run("ok", func(t *testing.T) {
		rec := &recorder{}
		res, err := p.Apply(ctx, "check", &sdk.ApplyRequest{Inputs: obj(merge(connIn(s, ""), map[string]any{"databases": []string{db}}))}, rec)
		if err != nil {
			t.Fatal(err)
		}
		if res.Outputs.GetAttr("user").AsString() != "admin" || !res.Outputs.GetAttr("admin").True() {
			t.Errorf("user = %#v, admin = %#v", res.Outputs.GetAttr("user"), res.Outputs.GetAttr("admin"))
		}
		if got := res.Outputs.GetAttr("vendor").AsString(); got != "PouchDB authors" {
			t.Errorf("vendor = %q", got)
		}
		dbs := res.Outputs.GetAttr("databases")
		if dbs.LengthInt() != 1 {
			t.Fatalf("databases = %#v", dbs)
		}
		n, _ := dbs.Index(ctyInt(0)).GetAttr("doc_count").AsBigFloat().Int64()
		if n != 7 {
			t.Errorf("doc_count = %d, want 7", n)
		}
	})
	t.Run("missing database", func(t *testing.T) {
		_, err := p.Apply(ctx, "check", &sdk.ApplyRequest{Inputs: obj(merge(connIn(s, ""), map[string]any{"databases": []string{db, "nope"}}))}, &recorder{})
		if se := sdk.Classify(err); se.Kind != sdk.KindNotFound || !strings.Contains(err.Error(), "nope") {
			t.Errorf("err = %v", err)
		}
	})
	t.Run("bad password", func(t *testing.T) {
		rec := &recorder{}
		in := connIn(s, "")
		in["password"] = "wrong-secret-123"
		_, err := p.Apply(ctx, "check", &sdk.ApplyRequest{Inputs: obj(in)}, rec)
		se := sdk.Classify(err)
		if se.Kind != sdk.KindAuth || se.Retryable || !strings.Contains(err.Error(), "credentials rejected") || se.Hint == "" {
			t.Errorf("err = %v (kind %s, retryable %v, hint %q)", err, se.Kind, se.Retryable, se.Hint)
		}
		assertNoSecret(t, "wrong-secret-123", err, rec.allLogs())
	})
	t.Run("password in URL", func(t *testing.T) {
		rec := &recorder{}
		in := map[string]any{"url": strings.Replace(s.URL, "http://", "http://admin:bad-in-url-456@", 1)}
		_, err := p.Apply(ctx, "check", &sdk.ApplyRequest{Inputs: obj(in)}, rec)
		if sdk.Classify(err).Kind != sdk.KindAuth {
			t.Errorf("err = %v", err)
		}
		assertNoSecret(t, "bad-in-url-456", err, rec.allLogs())
	})
	t.Run("unreachable", func(t *testing.T) {
		rec := &recorder{}
		in := map[string]any{"url": fmt.Sprintf("http://127.0.0.1:%d", testenv.FreePort(t)), "username": "admin", "password": "s3cret-unreach"}
		_, err := p.Apply(ctx, "check", &sdk.ApplyRequest{Inputs: obj(in)}, rec)
		se := sdk.Classify(err)
		if se.Kind != sdk.KindUnreachable || !se.Retryable || !strings.Contains(err.Error(), "unreachable") || se.Hint == "" {
			t.Errorf("err = %v (kind %s, retryable %v, hint %q)", err, se.Kind, se.Retryable, se.Hint)
		}
		assertNoSecret(t, "s3cret-unreach", err, rec.allLogs())
	})
}
