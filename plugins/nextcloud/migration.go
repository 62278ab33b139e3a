package nextcloud

import (
	"context"
	"encoding/json"
	"fmt"
	"net/url"
	"strings"
	"time"

	amqp "github.com/rabbitmq/amqp091-go"
	"github.com/zclconf/go-cty/cty"

	"github.com/runbookdev/runbook/internal/ctyx"
	"github.com/runbookdev/runbook/sdk"
)

// The AMQP contract of cozy-stack's Nextcloud migration
// (pkg/rabbitmq/contracts.go).
const (
	defaultExchange = "migration"
	keyRequested    = "nextcloud.migration.requested"
	keyCanceled     = "nextcloud.migration.canceled"
)

type requestedMsg struct {
	MigrationID   string `json:"migrationId"`
	WorkplaceFqdn string `json:"workplaceFqdn"`
	AccountID     string `json:"accountId"`
	SourcePath    string `json:"sourcePath,omitempty"`
	Timestamp     int64  `json:"timestamp"`
}

type canceledMsg struct {
	MigrationID   string `json:"migrationId"`
	WorkplaceFqdn string `json:"workplaceFqdn"`
	Timestamp     int64  `json:"timestamp"`
}

// busAttrs name the broker and the tracking store.
var busAttrs = append([]sdk.Attribute{
	{Name: "instance", Type: cty.String, Required: true, Description: "The workplace (Cozy instance) domain the migration is for; one migration is in flight per instance."},
	{Name: "amqp_url", Type: cty.String, Required: true, Sensitive: true, Description: "RabbitMQ URL, amqp://user:pass@host:5672/vhost; never printed."},
	{Name: "exchange", Type: cty.String, Description: `Exchange to publish to (default "migration"; declared as a durable topic exchange if missing).`},
}, storeAttrs...)

// publish sends one persistent JSON message and waits for the broker's
// confirmation.
func publish(ctx context.Context, amqpURL, exchange, key, id string, body any) error {
	b, err := json.Marshal(body)
	if err != nil {
		return err
	}
	u, perr := url.Parse(amqpURL)
	host := "the broker"
	if perr == nil {
		host = u.Host
	}
	fail := func(what string, err error) error {
		return sdk.Errorf(sdk.KindUnreachable, true, fmt.Sprintf("check that RabbitMQ at %s is up and the credentials are right", host),
			"publish %s to %s: %s: %v", key, host, what, scrubAMQP(err, amqpURL))
	}
	conn, err := amqp.DialConfig(amqpURL, amqp.Config{Dial: amqp.DefaultDial(10 * time.Second), Properties: amqp.Table{"connection_name": "runbook nextcloud"}})
	if err != nil {
		return fail("connect", err)
	}
	defer conn.Close()
	ch, err := conn.Channel()
	if err != nil {
		return fail("open channel", err)
	}
	defer ch.Close()
	if err := ch.ExchangeDeclare(exchange, "topic", true, false, false, false, nil); err != nil {
		return fail("declare exchange", err)
	}
	if err := ch.Confirm(false); err != nil {
		return fail("confirm mode", err)
	}
	pctx, cancel := context.WithTimeout(ctx, 30*time.Second)
	defer cancel()
	conf, err := ch.PublishWithDeferredConfirmWithContext(pctx, exchange, key, false, false, amqp.Publishing{
		ContentType: "application/json", DeliveryMode: amqp.Persistent, MessageId: id,
		Timestamp: time.Now().UTC(), Body: b,
	})
	if err != nil {
		return fail("publish", err)
	}
	ok, err := conf.WaitContext(pctx)
	if err != nil {
		return fail("wait for the confirmation", err)
	}
	if !ok {
		return fail("confirmation", fmt.Errorf("the broker refused the message (nack)"))
	}
	return nil
}

// scrubAMQP removes the URL's password from an error message.
func scrubAMQP(err error, amqpURL string) string {
	msg := err.Error()
	if u, perr := url.Parse(amqpURL); perr == nil && u.User != nil {
		if p, ok := u.User.Password(); ok && p != "" {
			msg = strings.ReplaceAll(msg, p, "***")
		}
	}
	return msg
}

func exchangeOf(in cty.Value) string {
	if e := ctyx.StringAttr(in, "exchange"); e != "" {
		return e
	}
	return defaultExchange
}

// requestMigrationAction is nextcloud.request_migration.
type requestMigrationAction struct{}

var (
	_ sdk.Action    = requestMigrationAction{}
	_ sdk.Validator = requestMigrationAction{}
)

func (requestMigrationAction) Schema() sdk.ActionSchema {
	in := []sdk.Attribute{
		{Name: "url", Type: cty.String, Required: true, Description: "Root URL of the Nextcloud server."},
		{Name: "login", Type: cty.String, Required: true, Description: "Nextcloud login."},
		{Name: "password", Type: cty.String, Required: true, Sensitive: true, Description: "Nextcloud app password; kept only in the account document, never in the message."},
		{Name: "source_path", Type: cty.String, Description: `Folder to import (default "/").`},
		{Name: "target_dir", Type: cty.String, Description: `Folder of the workplace to import into (default "/Nextcloud").`},
	}
	in = append(in, busAttrs...)
	return sdk.ActionSchema{
		Name: "request_migration",
		Description: "Request a bulk migration: probe the credentials, refuse when a migration of the instance is pending or running (failed ones do not block), store the account and a pending tracking document, then publish nextcloud.migration.requested (persistent, message id = migration id, no credentials). " +
			"A failed publish marks the document failed.",
		Inputs: in,
		Outputs: []sdk.Attribute{
			{Name: "migration_id", Type: cty.String},
			{Name: "status", Type: cty.String, Description: `"pending" once published.`},
			{Name: "user_id", Type: cty.String, Description: "The DAV user id the probe found."},
			{Name: "account_id", Type: cty.String},
			{Name: "tracking_doc", Type: cty.String, Description: "Path of the tracking document, or its CouchDB URL (without credentials)."},
		},
	}
}

func (requestMigrationAction) Validate(_ context.Context, in cty.Value) sdk.Diagnostics {
	d := validateConn(in, "")
	d = append(d, validateStore(in)...)
	if v := ctyx.Attr(in, "instance"); v.IsKnown() && !v.IsNull() {
		if err := checkInstance(v.AsString()); err != nil {
			d = d.Errorf([]string{"instance"}, "%v", err)
		}
	}
	return d
}

func (a requestMigrationAction) Apply(ctx context.Context, req *sdk.ApplyRequest, ev sdk.Events) (*sdk.Result, error) {
	in := req.Inputs
	instance := ctyx.StringAttr(in, "instance")
	if err := checkInstance(instance); err != nil {
		return nil, err
	}
	store, err := openStore(in)
	if err != nil {
		return nil, err
	}
	c, err := connFrom(in, "").client()
	if err != nil {
		return nil, err
	}
	defer c.Close()

	// Resumed after a crash: publish the same migration again (the
	// consumer deduplicates on the message id) rather than start another.
	var doc *trackDoc
	if len(req.Checkpoint) > 0 {
		var id string
		if json.Unmarshal(req.Checkpoint, &id) == nil {
			if d, err := store.get(instance, id); err == nil && d.Status == "pending" {
				doc = d
			}
		}
	}
	var userID string
	if doc == nil {
		pctx, cancel := context.WithTimeout(ctx, 30*time.Second)
		u, err := probeUser(pctx, c)
		cancel()
		if err != nil {
			return nil, err
		}
		userID = u.ID
		unlock, err := store.lock(instance)
		if err != nil {
			return nil, err
		}
		doc, err = a.create(store, in, instance, u.ID)
		unlock()
		if err != nil {
			return nil, err
		}
		if err := ev.Checkpoint(mustJSON(doc.ID)); err != nil {
			return nil, err
		}
	}
	msg := requestedMsg{MigrationID: doc.ID, WorkplaceFqdn: instance, AccountID: doc.AccountID, Timestamp: time.Now().Unix()}
	if doc.SourcePath != "/" {
		msg.SourcePath = doc.SourcePath
	}
	if err := publish(ctx, ctyx.StringAttr(in, "amqp_url"), exchangeOf(in), keyRequested, doc.ID, msg); err != nil {
		doc.Status = "failed"
		doc.FailureReason = "publish failed: " + sdk.Classify(err).Err.Error()
		t := now()
		doc.FinishedAt = &t
		if perr := store.put(doc); perr != nil {
			return nil, fmt.Errorf("%w (and marking the tracking document failed: %v)", err, perr)
		}
		return nil, err
	}
	ev.Log(sdk.LevelInfo, fmt.Sprintf("migration %s of %s requested", doc.ID, instance))
	v, err := sdk.Encode(a.Schema(), struct {
		ID      string `cty:"migration_id"`
		Status  string `cty:"status"`
		User    string `cty:"user_id"`
		Account string `cty:"account_id"`
		Doc     string `cty:"tracking_doc"`
	}{doc.ID, doc.Status, userID, doc.AccountID, store.docRef(instance, doc.ID)})
	if err != nil {
		return nil, err
	}
	return &sdk.Result{Outputs: v}, nil
}

// create checks that nothing is in flight and writes the account and a
// pending tracking document; the caller holds the instance's lock.
func (requestMigrationAction) create(store trackStore, in cty.Value, instance, userID string) (*trackDoc, error) {
	if d, err := store.activeDoc(instance); err != nil {
		return nil, err
	} else if d != nil {
		return nil, sdk.Errorf(sdk.KindConflict, false, "wait for it to finish, or cancel it with nextcloud.cancel_migration",
			"a migration of %s is already %s: %s", instance, d.Status, d.ID)
	}
	acct := &account{ID: "nextcloud-" + instance, AccountType: "nextcloud", WebdavUserID: userID,
		Auth: accountAuth{URL: ctyx.StringAttr(in, "url"), Login: ctyx.StringAttr(in, "login"), Password: ctyx.StringAttr(in, "password")}}
	if err := store.putAccount(instance, acct); err != nil {
		return nil, fmt.Errorf("store the account: %w", err)
	}
	src, dst := ctyx.StringAttr(in, "source_path"), ctyx.StringAttr(in, "target_dir")
	if src == "" {
		src = "/"
	}
	if dst == "" {
		dst = "/Nextcloud"
	}
	doc := &trackDoc{ID: newMigrationID(), SchemaVersion: 1, Instance: instance, AccountID: acct.ID, Status: "pending",
		TargetDir: dst, SourcePath: src, CreatedAt: now()}
	if err := store.put(doc); err != nil {
		return nil, fmt.Errorf("store the tracking document: %w", err)
	}
	return doc, nil
}

func mustJSON(v any) []byte {
	b, _ := json.Marshal(v)
	return b
}

// cancelMigrationAction is nextcloud.cancel_migration.
type cancelMigrationAction struct{}

var _ sdk.Action = cancelMigrationAction{}

func (cancelMigrationAction) Schema() sdk.ActionSchema {
	in := []sdk.Attribute{{Name: "migration_id", Type: cty.String, Required: true, Description: "The migration to cancel."}}
	in = append(in, busAttrs...)
	return sdk.ActionSchema{
		Name: "cancel_migration",
		Description: "Ask the consumer to cancel a migration: publish nextcloud.migration.canceled and set cancel_requested in the tracking document. " +
			"A migration already completed, failed or canceled is refused (conflict); a failed publish leaves the document as it was.",
		Inputs: in,
		Outputs: []sdk.Attribute{
			{Name: "status", Type: cty.String, Description: "The migration's status when the cancellation was sent."},
		},
		Capabilities: sdk.Capabilities{Idempotent: true},
	}
}

func (a cancelMigrationAction) Apply(ctx context.Context, req *sdk.ApplyRequest, ev sdk.Events) (*sdk.Result, error) {
	in := req.Inputs
	instance, id := ctyx.StringAttr(in, "instance"), ctyx.StringAttr(in, "migration_id")
	if err := checkInstance(instance); err != nil {
		return nil, err
	}
	store, err := openStore(in)
	if err != nil {
		return nil, err
	}
	doc, err := store.get(instance, id)
	if err != nil {
		return nil, err
	}
	if !doc.active() {
		return nil, sdk.Errorf(sdk.KindConflict, false, "nothing to cancel", "migration %s is already %s", id, doc.Status)
	}
	if err := publish(ctx, ctyx.StringAttr(in, "amqp_url"), exchangeOf(in), keyCanceled, id,
		canceledMsg{MigrationID: id, WorkplaceFqdn: instance, Timestamp: time.Now().Unix()}); err != nil {
		return nil, err
	}
	// Read the document again under the instance's lock: the consumer may
	// be changing it (it takes the same lock).
	unlock, err := store.lock(instance)
	if err != nil {
		return nil, err
	}
	if d, err := store.get(instance, id); err == nil {
		doc = d
	}
	doc.CancelRequested = true
	err = store.put(doc)
	unlock()
	if err != nil {
		return nil, fmt.Errorf("record the cancellation: %w", err)
	}
	ev.Log(sdk.LevelInfo, fmt.Sprintf("cancellation of migration %s sent", id))
	v, err := sdk.Encode(a.Schema(), struct {
		Status string `cty:"status"`
	}{doc.Status})
	if err != nil {
		return nil, err
	}
	return &sdk.Result{Outputs: v}, nil
}
