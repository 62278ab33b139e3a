package couchdb

import (
	"encoding/base64"
	"fmt"
	"strings"
	"testing"
)

// BenchmarkParseBulkGet compares parseBulkGet with encoding/json
// (refBulkGet) on a _bulk_get answer shaped like a Cozy chunk: 20
// documents, each with a 200 KB attachment inline (base64).
func BenchmarkParseBulkGet(b *testing.B) {
	att := base64.StdEncoding.EncodeToString([]byte(strings.Repeat("jpeg bytes ", 200<<10/11)))
	var sb strings.Builder
	sb.WriteString(`{"results":[`)
	for i := 0; i < 20; i++ {
		if i > 0 {
			sb.WriteString(",")
		}
		fmt.Fprintf(&sb, `{"id":"photo-%02d","docs":[{"ok":{"_id":"photo-%02d","_rev":"1-abc","docType":"Binary","_revisions":{"start":1,"ids":["abc"]},"_attachments":{"file":{"content_type":"image/jpeg","revpos":1,"data":%q}}}}]}`, i, i, att)
	}
	sb.WriteString(`]}`)
	body := []byte(sb.String())
	parsers := []struct {
		name  string
		parse func([]byte) ([]fetchedDoc, error)
	}{{"jsonscan", parseBulkGet}, {"encoding/json", refBulkGet}}
	for _, bc := range parsers {
		b.Run(bc.name, func(b *testing.B) {
			b.SetBytes(int64(len(body)))
			for b.Loop() {
				docs, err := bc.parse(body)
				if err != nil || len(docs) != 20 {
					b.Fatalf("%d docs, %v", len(docs), err)
				}
			}
		})
	}
}
