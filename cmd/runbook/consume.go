package main

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net/url"
	"os"
	"os/signal"
	"path/filepath"
	"regexp"
	"strings"
	"sync"
	"syscall"
	"time"

	amqp "github.com/rabbitmq/amqp091-go"
	"github.com/spf13/cobra"

	"github.com/runbookdev/runbook/engine/lang"
	"github.com/runbookdev/runbook/engine/mask"
	"github.com/runbookdev/runbook/engine/session"
	"github.com/runbookdev/runbook/engine/view"
	"github.com/runbookdev/runbook/internal/tick"
	"github.com/runbookdev/runbook/plugins/builtin"
	"github.com/runbookdev/runbook/plugins/nextcloud"
)

// consumeOptions are the flags of `runbook consume`.
type consumeOptions struct {
	queue, runbook, trackingDir, exchange string
	// tracking is the tracking store: a directory or a CouchDB URL
	// (-tracking; -tracking-dir is the directory form).
	tracking  string
	campaign  string // add each migration to this campaign instead of running it
	prefetch  int
	heartbeat time.Duration
	vars      lang.VarSources
	rf        runFlags
}

func init() {
	var vf varFlags
	var o consumeOptions
	cmd := &cobra.Command{
		Use:   "consume AMQP_URL",
		Short: "Run a runbook for each migration requested on RabbitMQ",
		Long: `Consume reads nextcloud.migration.requested and nextcloud.migration.canceled
messages (exchange -exchange, bound to -queue) and runs -runbook once per
migration, with the variables nextcloud_url, login and password read from the
account the migration's tracking document names (never from the message),
source_path, instance and migration_id from the message, and the store as
tracking_dir (a directory) or couchdb_url (CouchDB, sensitive); -var and
-var-file give the others. -tracking is where nextcloud.request_migration
keeps the documents: a directory, or CouchDB as couchdb://USER:PASS@HOST:5984
(couchdbs:// for https, or http(s)://...), in the databases
INSTANCE/io.cozy.nextcloud.migrations and INSTANCE/io.cozy.accounts; its
password is never printed. Each run is journaled like any apply. A message is acked once
its run is recorded; a redelivered message whose run exists resumes that run
(or is dropped when it finished); a cancel message interrupts the matching run
cleanly and marks the migration canceled. -prefetch caps the runs at once.
While a run goes, last_heartbeat_at is updated every -heartbeat. The broker
going away is survived: the consumer reconnects; unacked messages come back.
Stop with Ctrl-C (running runs are interrupted and stay resumable).`,
		Args: cobra.ExactArgs(1),
		RunE: func(cmd *cobra.Command, args []string) error {
			o.vars = vf.sources()
			o.vars.Prompt = nil
			ctx, stop := signalContext()
			defer stop()
			if err := runConsume(ctx, cmd.OutOrStdout(), cmd.ErrOrStderr(), args[0], o); err != nil {
				return withCode(exitError, err)
			}
			return nil
		},
	}
	addVarFlags(cmd, &vf)
	addRunFlags(cmd, &o.rf)
	cmd.Flags().StringVar(&o.queue, "queue", "", "queue to consume (declared durable and bound to the exchange)")
	cmd.Flags().StringVar(&o.runbook, "runbook", "", "runbook file to run for each migration")
	cmd.Flags().StringVar(&o.tracking, "tracking", "", "tracking documents and accounts, as nextcloud.request_migration keeps them: a directory, or CouchDB as couchdb://USER:PASS@HOST:5984")
	cmd.Flags().StringVar(&o.trackingDir, "tracking-dir", "", "tracking directory (the same as -tracking DIR)")
	cmd.Flags().StringVar(&o.exchange, "exchange", "migration", "exchange the messages are published to")
	cmd.Flags().IntVar(&o.prefetch, "prefetch", 1, "runs at once (and unacked messages)")
	cmd.Flags().DurationVar(&o.heartbeat, "heartbeat", 30*time.Second, "how often a running migration's last_heartbeat_at is updated")
	cmd.Flags().StringVar(&o.campaign, "campaign", "", "add each migration as a target of this campaign of the -state database (created when missing) for the workers to run, instead of running it here")
	rootCmd.AddCommand(cmd)
}

// signalContext is cancelled by the first SIGINT or SIGTERM.
func signalContext() (context.Context, context.CancelFunc) {
	return signal.NotifyContext(context.Background(), os.Interrupt, syscall.SIGTERM)
}

// migrationMsg is the payload of both routing keys.
type migrationMsg struct {
	MigrationID   string `json:"migrationId"`
	WorkplaceFqdn string `json:"workplaceFqdn"`
	AccountID     string `json:"accountId"`
	SourcePath    string `json:"sourcePath"`
}

var safeName = regexp.MustCompile(`^[A-Za-z0-9][A-Za-z0-9.\-_:]*$`)

// consumer runs migrations as messages arrive.
type consumer struct {
	o      consumeOptions
	stdout io.Writer
	stderr io.Writer
	sem    chan struct{}
	// tr keeps the tracking documents and accounts; runsDir maps each
	// migration to its run ("RUN-ID INSTANCE").
	tr      *nextcloud.Tracking
	runsDir string
	// out carries the runs' events to stdout.
	out *view.AsyncWriter
	// campaign, with -campaign, receives the migrations (see
	// consume_campaign.go).
	campaign *campaignSink

	mu     sync.Mutex
	active map[string]*activeRun // by migration id
	wg     sync.WaitGroup
}

type activeRun struct {
	cancel   context.CancelFunc
	canceled bool
}

func redactAMQP(raw string) string {
	u, err := url.Parse(raw)
	if err != nil || u.User == nil {
		return raw
	}
	u.User = url.User(u.User.Username())
	return u.String()
}

func runConsume(ctx context.Context, stdout, stderr io.Writer, amqpURL string, o consumeOptions) error {
	if o.tracking == "" {
		o.tracking = o.trackingDir
	} else if o.trackingDir != "" && o.trackingDir != o.tracking {
		return errors.New("consume: give -tracking or -tracking-dir, not both")
	}
	if o.queue == "" || o.runbook == "" || o.tracking == "" {
		return errors.New("consume needs -queue, -runbook and -tracking")
	}
	tr, err := nextcloud.OpenTracking(o.tracking)
	if err != nil {
		return err
	}
	// What the consumer prints itself is masked too: the broker's and
	// CouchDB's passwords.
	sm := mask.New()
	sm.Add(tr.Secrets()...)
	if u, err := url.Parse(amqpURL); err == nil && u.User != nil {
		if p, ok := u.User.Password(); ok {
			sm.Add(p)
		}
	}
	mout, merr := sm.Writer(stdout), sm.Writer(stderr)
	defer mout.Flush()
	defer merr.Flush()
	stdout, stderr = mout, merr
	if o.prefetch < 1 {
		o.prefetch = 1
	}
	if o.heartbeat <= 0 {
		o.heartbeat = 30 * time.Second
	}
	if o.rf.stateDir == "" {
		o.rf.stateDir = filepath.Join(filepath.Dir(o.runbook), ".runbook")
	}
	c := &consumer{o: o, stdout: stdout, stderr: stderr, sem: make(chan struct{}, o.prefetch), active: map[string]*activeRun{},
		out: view.NewAsyncWriter(stdout), tr: tr, runsDir: filepath.Join(o.rf.stateDir, "consume-runs")}
	if d := tr.Dir(); d != "" {
		c.runsDir = filepath.Join(d, "runs")
	}
	defer c.wg.Wait()
	if o.campaign != "" {
		k, err := openCampaignSink(ctx, o.campaign, o.runbook)
		if err != nil {
			return err
		}
		defer k.close()
		c.campaign = k
	} else {
		c.recoverRuns(ctx)
	}
	for {
		err := c.session(ctx, amqpURL)
		if ctx.Err() != nil {
			return nil
		}
		fmt.Fprintf(stderr, "consume: %s: %v; reconnecting\n", redactAMQP(amqpURL), scrubSecret(err, amqpURL))
		select {
		case <-ctx.Done():
			return nil
		case <-time.After(2 * time.Second):
		}
	}
}

func scrubSecret(err error, amqpURL string) string {
	msg := fmt.Sprint(err)
	if u, perr := url.Parse(amqpURL); perr == nil && u.User != nil {
		if p, ok := u.User.Password(); ok && p != "" {
			msg = strings.ReplaceAll(msg, p, "***")
		}
	}
	return msg
}

// session consumes over one connection until it closes or ctx ends.
func (c *consumer) session(ctx context.Context, amqpURL string) error {
	conn, err := amqp.Dial(amqpURL)
	if err != nil {
		return err
	}
	defer conn.Close()
	ch, err := conn.Channel()
	if err != nil {
		return err
	}
	if err := ch.Qos(c.o.prefetch, 0, false); err != nil {
		return err
	}
	if err := ch.ExchangeDeclare(c.o.exchange, "topic", true, false, false, false, nil); err != nil {
		return err
	}
	if _, err := ch.QueueDeclare(c.o.queue, true, false, false, false, nil); err != nil {
		return err
	}
	for _, key := range []string{"nextcloud.migration.requested", "nextcloud.migration.canceled"} {
		if err := ch.QueueBind(c.o.queue, key, c.o.exchange, false, nil); err != nil {
			return err
		}
	}
	deliveries, err := ch.ConsumeWithContext(ctx, c.o.queue, "", false, false, false, false, nil)
	if err != nil {
		return err
	}
	fmt.Fprintf(c.out, "consume: waiting for migrations on %s (queue %s)\n", redactAMQP(amqpURL), c.o.queue)
	for {
		select {
		case <-ctx.Done():
			return ctx.Err()
		case d, ok := <-deliveries:
			if !ok {
				return errors.New("the broker closed the channel")
			}
			c.wg.Add(1)
			go func() {
				defer c.wg.Done()
				c.handle(ctx, d)
			}()
		}
	}
}

func (c *consumer) handle(ctx context.Context, d amqp.Delivery) {
	var m migrationMsg
	if err := json.Unmarshal(d.Body, &m); err != nil || !safeName.MatchString(m.MigrationID) || !safeName.MatchString(m.WorkplaceFqdn) {
		fmt.Fprintf(c.stderr, "consume: dropping a malformed message (%s)\n", d.RoutingKey)
		_ = d.Nack(false, false)
		return
	}
	switch d.RoutingKey {
	case "nextcloud.migration.canceled":
		c.cancel(m)
		_ = d.Ack(false)
	case "nextcloud.migration.requested":
		if c.campaign != nil {
			c.enqueue(ctx, m, d)
			return
		}
		c.run(ctx, m, func() { _ = d.Ack(false) }, func() { _ = d.Nack(false, false) }, false)
	default:
		_ = d.Nack(false, false)
	}
}

func (c *consumer) cancel(m migrationMsg) {
	c.mu.Lock()
	a := c.active[m.MigrationID]
	if a != nil {
		a.canceled = true
		a.cancel()
	}
	c.mu.Unlock()
	if a == nil {
		// Nothing runs here: a pending migration is canceled at once.
		_ = c.updateDoc(m, func(doc map[string]any) {
			if s, _ := doc["status"].(string); s == "pending" || s == "running" {
				t := time.Now().UTC().Format(time.RFC3339Nano)
				doc["status"], doc["canceled_at"], doc["finished_at"] = "canceled", t, t
			}
		})
	}
	fmt.Fprintf(c.out, "consume: migration %s canceled\n", m.MigrationID)
}

func (c *consumer) runFile(id string) string { return filepath.Join(c.runsDir, id) }

// recordedRun reads the run recorded for a migration: its id and
// instance ("" when none).
func (c *consumer) recordedRun(id string) (runID, instance string) {
	b, _ := os.ReadFile(c.runFile(id))
	f := strings.Fields(string(b))
	if len(f) > 0 {
		runID = f[0]
	}
	if len(f) > 1 {
		instance = f[1]
	}
	return runID, instance
}

// run starts (or resumes) the migration's run; the message is acked once
// the run is journaled (nack: dropped to the dead-letter exchange). A
// recovered run (found at start, no message) leaves the document alone
// when it cannot go on.
func (c *consumer) run(ctx context.Context, m migrationMsg, ackMsg, nackMsg func(), recovered bool) {
	c.mu.Lock()
	if c.active[m.MigrationID] != nil {
		c.mu.Unlock()
		ackMsg() // a redelivery of a run going on here
		return
	}
	rctx, cancel := context.WithCancel(ctx)
	a := &activeRun{cancel: cancel}
	c.active[m.MigrationID] = a
	c.mu.Unlock()
	defer func() {
		cancel()
		c.mu.Lock()
		delete(c.active, m.MigrationID)
		c.mu.Unlock()
	}()
	select {
	case c.sem <- struct{}{}:
	case <-ctx.Done():
		return // unacked: the broker delivers it again
	}
	defer func() { <-c.sem }()

	vars, err := c.vars(m)
	if err != nil {
		fmt.Fprintf(c.stderr, "consume: migration %s: %v\n", m.MigrationID, err)
		if !recovered {
			_ = c.updateDoc(m, func(doc map[string]any) {
				doc["status"], doc["failure_reason"] = "failed", err.Error()
			})
		}
		nackMsg()
		return
	}
	var acked sync.Once
	ack := func() { acked.Do(ackMsg) }
	runID, _ := c.recordedRun(m.MigrationID)
	mk := mask.New()
	mk.Add(c.tr.Secrets()...)
	defer func() { _ = c.out.Flush() }()
	s, err := session.New(session.Options{
		StateDir: c.o.rf.stateDir, Parallelism: c.o.rf.parallelism, Sink: view.NewPlain(c.out, mk), Mask: mk, Stderr: c.stderr,
		Command: "runbook consume (migration " + m.MigrationID + ")", Builtins: builtin.All(),
		OnRun: func(id string, _ session.Commands) {
			if err := writeFileAtomic(c.runFile(m.MigrationID), []byte(id+" "+m.WorkplaceFqdn+"\n")); err != nil {
				fmt.Fprintf(c.stderr, "consume: record run of %s: %v\n", m.MigrationID, err)
				return
			}
			ack()
		},
	})
	if err != nil {
		fmt.Fprintf(c.stderr, "consume: %v\n", err)
		return
	}
	defer s.Close()
	stopBeat := c.heartbeat(m)
	var outcome *session.Outcome
	if runID != "" {
		fmt.Fprintf(c.out, "consume: migration %s: resuming run %s\n", m.MigrationID, runID)
		outcome, err = s.Resume(rctx, runID, vars)
		if err != nil && strings.Contains(err.Error(), "nothing to resume") {
			ack() // it finished before: nothing to do again
			err = nil
		}
	} else {
		fmt.Fprintf(c.out, "consume: migration %s of %s: starting %s\n", m.MigrationID, m.WorkplaceFqdn, c.o.runbook)
		var rb *session.Runbook
		if rb, err = s.Open(vars, c.o.runbook); err == nil {
			outcome, err = rb.Apply(rctx, nil)
			rb.Close()
		}
	}
	stopBeat()
	c.mu.Lock()
	canceled := a.canceled
	c.mu.Unlock()
	switch {
	case canceled:
		_ = c.updateDoc(m, func(doc map[string]any) {
			t := time.Now().UTC().Format(time.RFC3339Nano)
			doc["status"], doc["canceled_at"], doc["finished_at"] = "canceled", t, t
		})
	case err != nil && (recovered || runID != ""):
		// Resuming failed (another consumer may hold the run): the
		// document stays as that run leaves it.
		fmt.Fprintf(c.stderr, "consume: migration %s: %v\n", m.MigrationID, err)
	case err != nil && ctx.Err() != nil:
		// Stopping: the run is interrupted, not failed; it resumes from
		// its run file.
		fmt.Fprintf(c.stderr, "consume: migration %s: interrupted: %v\n", m.MigrationID, err)
	case err != nil:
		fmt.Fprintf(c.stderr, "consume: migration %s: %v\n", m.MigrationID, err)
		_ = c.updateDoc(m, func(doc map[string]any) {
			if s, _ := doc["status"].(string); s == "pending" || s == "running" {
				doc["status"], doc["failure_reason"] = "failed", err.Error()
			}
		})
	case outcome != nil && outcome.Result != nil:
		fmt.Fprintf(c.out, "consume: migration %s: run %s %s\n", m.MigrationID, outcome.RunID, outcome.Result.State)
	}
	if ctx.Err() != nil && !canceled {
		return // stopping: an unacked message comes back; an acked one resumes from its run file
	}
	ack()
}

// recoverRuns resumes the runs of migrations still pending or running
// whose heartbeat stopped (a consumer killed after it acked their
// message): their messages will not come again.
func (c *consumer) recoverRuns(ctx context.Context) {
	ents, _ := os.ReadDir(c.runsDir)
	for _, e := range ents {
		id := e.Name()
		if !safeName.MatchString(id) {
			continue
		}
		_, instance := c.recordedRun(id)
		if instance == "" && c.tr.Dir() != "" {
			// Recorded before the instance was: find its document.
			docs, _ := filepath.Glob(filepath.Join(c.tr.Dir(), "migrations", "*", id+".json"))
			if len(docs) != 1 {
				continue
			}
			instance = filepath.Base(filepath.Dir(docs[0]))
		}
		if !safeName.MatchString(instance) {
			continue
		}
		raw, err := c.tr.Doc(instance, id)
		if err != nil {
			continue
		}
		var doc struct {
			Status     string `json:"status"`
			Instance   string `json:"workplace_fqdn"`
			SourcePath string `json:"source_path"`
			Heartbeat  string `json:"last_heartbeat_at"`
		}
		if b, err := json.Marshal(raw); err != nil || json.Unmarshal(b, &doc) != nil ||
			(doc.Status != "pending" && doc.Status != "running") || doc.Instance != instance {
			continue
		}
		if hb, err := time.Parse(time.RFC3339Nano, doc.Heartbeat); err == nil && time.Since(hb) < 3*c.o.heartbeat {
			continue // another consumer keeps it alive
		}
		m := migrationMsg{MigrationID: id, WorkplaceFqdn: doc.Instance, SourcePath: doc.SourcePath}
		fmt.Fprintf(c.out, "consume: migration %s: its consumer stopped; resuming\n", id)
		c.wg.Add(1)
		go func() {
			defer c.wg.Done()
			c.run(ctx, m, func() {}, func() {}, true)
		}()
	}
}

// vars are the runbook's variables for a migration: the credentials of
// the account its tracking document names, the rest from the message.
func (c *consumer) vars(m migrationMsg) (lang.VarSources, error) {
	acct, err := c.tr.Account(m.WorkplaceFqdn, m.MigrationID)
	if err != nil {
		return lang.VarSources{}, fmt.Errorf("the account of migration %s: %w", m.MigrationID, err)
	}
	src := m.SourcePath
	if src == "" {
		src = "/"
	}
	v := c.o.vars
	v.Args = append(append([]string(nil), v.Args...),
		"nextcloud_url="+acct.URL, "login="+acct.Login, "password="+acct.Password,
		"source_path="+src, "instance="+m.WorkplaceFqdn, "migration_id="+m.MigrationID)
	v.Args = append(v.Args, c.tr.VarArgs()...)
	return v, nil
}

// heartbeat updates last_heartbeat_at until the returned func is called;
// none is written once it returned.
func (c *consumer) heartbeat(m migrationMsg) func() {
	stop := make(chan struct{})
	done := make(chan struct{})
	go func() {
		defer close(done)
		tick.Every(stop, c.o.heartbeat, func() bool {
			_ = c.updateDoc(m, func(doc map[string]any) {
				doc["last_heartbeat_at"] = time.Now().UTC().Format(time.RFC3339Nano)
			})
			return true
		})
	}()
	return func() { close(stop); <-done }
}

// docMu serializes the consumer's read-modify-writes of tracking documents.
var docMu sync.Mutex

func (c *consumer) updateDoc(m migrationMsg, f func(map[string]any)) error {
	docMu.Lock()
	defer docMu.Unlock()
	return c.tr.Update(m.WorkplaceFqdn, m.MigrationID, f)
}

func writeFileAtomic(path string, data []byte) error {
	if err := os.MkdirAll(filepath.Dir(path), 0o700); err != nil {
		return err
	}
	tmp := path + ".tmp"
	if err := os.WriteFile(tmp, data, 0o644); err != nil {
		return err
	}
	return os.Rename(tmp, path)
}
