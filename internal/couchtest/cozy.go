package couchtest

import (
	"encoding/base64"
	"fmt"
)

// V2Source is a Cozy v2 instance's database. Cozy v2 keeps everything in
// one "cozy" database; documents carry a docType (cozy-data-system). These
// are shaped like a real instance.
func V2Source() []map[string]any {
	docs := []map[string]any{
		{"_id": "src-instance", "docType": "CozyInstance", "domain": "alice.example.net", "locale": "fr", "helpUrl": "https://cozy.io/help"},
		{"_id": "src-user", "docType": "User", "email": "alice@example.net", "password": "$2a$10$abcdefghijklmnopqrstuv", "salt": "s", "public_name": "Alice", "timezone": "Europe/Paris", "owner": true},
		{"_id": "src-app-files", "docType": "Application", "name": "files", "slug": "files", "state": "installed", "port": 9121, "git": "https://github.com/cozy/cozy-files.git", "version": "1.1.9", "password": "tok1"},
		{"_id": "src-app-contacts", "docType": "Application", "name": "contacts", "slug": "contacts", "state": "installed", "port": 9114, "version": "2.0.3", "password": "tok2"},
		{"_id": "src-app-databrowser", "docType": "Application", "name": "data-browser", "slug": "data-browser", "state": "installed", "version": "0.3.1"},
		{"_id": "src-stack-home", "docType": "StackApplication", "name": "home", "version": "2.1.0", "lastVersion": "2.1.4", "git": "https://github.com/cozy/cozy-home.git"},
		{"_id": "src-stack-proxy", "docType": "StackApplication", "name": "proxy", "version": "2.0.5", "lastVersion": "2.0.5"},
		{"_id": "src-stack-ds", "docType": "StackApplication", "name": "data-system", "version": "2.1.3", "lastVersion": "2.1.10"},
		{"_id": "src-device", "docType": "Device", "login": "laptop", "password": "devpass", "configuration": map[string]any{"file": "all"}},
		{"_id": "src-access", "docType": "Access", "login": "files", "token": "tok1", "app": "src-app-files", "permissions": map[string]any{"File": "read"}},
	}
	for i := 0; i < 20; i++ {
		docs = append(docs, map[string]any{"_id": fmt.Sprintf("contact-%02d", i), "docType": "Contact", "fn": fmt.Sprintf("Person %d", i)})
	}
	for i := 0; i < 3; i++ {
		docs = append(docs, map[string]any{"_id": fmt.Sprintf("binary-%d", i), "docType": "Binary",
			"_attachments": map[string]any{"file": map[string]any{"content_type": "image/jpeg",
				"data": base64.StdEncoding.EncodeToString([]byte(fmt.Sprintf("jpeg bytes %d", i)))}}})
	}
	return docs
}

// V2Target is a fresh install on the new server, with a placeholder
// owner created to finish the setup.
func V2Target() []map[string]any {
	return []map[string]any{
		{"_id": "dst-instance", "docType": "CozyInstance", "locale": "en"},
		{"_id": "dst-user", "docType": "User", "email": "placeholder@new.example", "password": "$2a$10$zzz", "owner": true},
		{"_id": "dst-app-databrowser", "docType": "Application", "name": "data-browser", "slug": "data-browser", "state": "installed", "version": "0.3.2"},
		{"_id": "dst-stack-home", "docType": "StackApplication", "name": "home", "version": "2.1.4"},
		{"_id": "dst-stack-proxy", "docType": "StackApplication", "name": "proxy", "version": "2.0.5"},
		{"_id": "dst-stack-ds", "docType": "StackApplication", "name": "data-system", "version": "2.1.10"},
	}
}
