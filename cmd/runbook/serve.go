package main

import (
	"context"
	"crypto/tls"
	"crypto/x509"
	"errors"
	"fmt"
	"io"
	"log"
	"net"
	"net/http"
	"os"
	"os/signal"
	"strings"
	"syscall"
	"time"

	"github.com/spf13/cobra"

	"github.com/runbookdev/runbook/engine/approval"
	"github.com/runbookdev/runbook/engine/campaign"
	"github.com/runbookdev/runbook/engine/journal"
	"github.com/runbookdev/runbook/engine/lang"
	"github.com/runbookdev/runbook/engine/session"
	"github.com/runbookdev/runbook/engine/viewer"
)

// serveFlags are the flags of `runbook serve` (the run viewer).
type serveFlags struct {
	listen, tokenFile, tlsCert, tlsKey, clientCA, stateDir string
}

// serveCmd is the run viewer; its subcommands are the other long-running
// servers runbook can be.
var serveCmd = &cobra.Command{
	Use:   "serve [-listen ADDR] [-token-file FILE] [-tls-cert FILE -tls-key FILE [-client-ca FILE]]",
	Short: "Serve the run viewer (web UI); `serve hubic-gateway` serves Swift auth",
	Long: `Serve starts the run viewer: a web page listing the runs of the state directory,
each run's graph coloured by step state and updated live, its timeline, values
(sensitive ones shown as "(sensitive)"), logs and progress, and buttons that approve
or reject a waiting core.approve step. The page uses a JSON API under /api/
(docs/api.md).

It listens on 127.0.0.1:8080 by default, where approvals are recorded under the
OS user who started it. Any other address needs -token-file (lines "name:token";
clients send "Authorization: Bearer TOKEN", a browser opens the page once with
?token=TOKEN) or TLS client certificates (-tls-cert, -tls-key, -client-ca: the
certificate's common name is the user).`,
	Args: cobra.NoArgs,
}

func init() {
	var f serveFlags
	serveCmd.RunE = func(cmd *cobra.Command, _ []string) error {
		return runServe(cmd.Context(), cmd.OutOrStdout(), cmd.ErrOrStderr(), f)
	}
	fl := serveCmd.Flags()
	fl.StringVar(&f.listen, "listen", "127.0.0.1:8080", "address to listen on (anything but loopback needs -token-file or -client-ca)")
	fl.StringVar(&f.tokenFile, "token-file", "", "file of name:token lines; a request must send one of the tokens")
	fl.StringVar(&f.tlsCert, "tls-cert", "", "serve HTTPS with this certificate (PEM)")
	fl.StringVar(&f.tlsKey, "tls-key", "", "the key of -tls-cert (PEM)")
	fl.StringVar(&f.clientCA, "client-ca", "", "require client certificates signed by this CA (PEM); the common name is the user")
	fl.StringVar(&f.stateDir, "state-dir", "", stateDirUsage)
	rootCmd.AddCommand(serveCmd)
}

// newViewer builds the viewer over the state directory of the session.
func newViewer(s *session.Session, f serveFlags, logf func(string, ...any)) (*viewer.Server, error) {
	if f.clientCA != "" && (f.tlsCert == "" || f.tlsKey == "") {
		return nil, errors.New("-client-ca needs -tls-cert and -tls-key")
	}
	if (f.tlsCert == "") != (f.tlsKey == "") {
		return nil, errors.New("-tls-cert and -tls-key go together")
	}
	auth, err := viewer.NewAuth(viewer.AuthConfig{Listen: f.listen, TokenFile: f.tokenFile,
		ClientCerts: f.clientCA != "", LocalUser: session.Holder().User})
	if err != nil {
		return nil, err
	}
	stateDir := s.StateDir()
	store, err := s.RunStore()
	if err != nil {
		return nil, err
	}
	var campaigns viewer.Campaigns
	if db, ok := store.(*journal.PGStore); ok {
		if campaigns, err = campaignLister(db); err != nil {
			return nil, err
		}
	}
	return viewer.New(viewer.Options{
		Campaigns: campaigns,
		Runs:      s, Store: store, StateDir: stateDir, Auth: auth, Logf: logf,
		Approve: func(runID, step, by string, approved bool) error {
			return approval.Write(stateDir, runID, step, by, approved)
		},
		Graph: func(cfg *lang.Config, rollback bool) (string, error) {
			var b strings.Builder
			err := writeGraph(&b, cfg, "mermaid", rollback)
			return b.String(), err
		},
	})
}

// serveTLS is the TLS configuration of the flags (nil: plain HTTP).
func serveTLS(f serveFlags) (*tls.Config, error) {
	if f.tlsCert == "" {
		return nil, nil
	}
	cert, err := tls.LoadX509KeyPair(f.tlsCert, f.tlsKey)
	if err != nil {
		return nil, fmt.Errorf("-tls-cert/-tls-key: %w", err)
	}
	cfg := &tls.Config{Certificates: []tls.Certificate{cert}, MinVersion: tls.VersionTLS12}
	if f.clientCA != "" {
		pem, err := os.ReadFile(f.clientCA)
		if err != nil {
			return nil, fmt.Errorf("-client-ca: %w", err)
		}
		pool := x509.NewCertPool()
		if !pool.AppendCertsFromPEM(pem) {
			return nil, fmt.Errorf("-client-ca %s: no PEM certificate", f.clientCA)
		}
		cfg.ClientCAs, cfg.ClientAuth = pool, tls.RequireAndVerifyClientCert
	}
	return cfg, nil
}

func runServe(ctx context.Context, stdout, stderr io.Writer, f serveFlags) error {
	logger := log.New(stderr, "serve: ", log.LstdFlags)
	s, err := runsSession(f.stateDir, stderr)
	if err != nil {
		return withCode(exitError, err)
	}
	v, err := newViewer(s, f, logger.Printf)
	if err != nil {
		return withCode(exitError, err)
	}
	defer v.Close()
	tlsCfg, err := serveTLS(f)
	if err != nil {
		return withCode(exitError, err)
	}
	l, err := net.Listen("tcp", f.listen)
	if err != nil {
		return withCode(exitError, fmt.Errorf("listen on %s: %w", f.listen, err))
	}
	scheme := "http"
	if tlsCfg != nil {
		l, scheme = tls.NewListener(l, tlsCfg), "https"
	}
	fmt.Fprintf(stdout, "serving the runs of %s at %s://%s/\n", s.StateDir(), scheme, l.Addr())
	srv := &http.Server{Handler: v, ReadHeaderTimeout: 10 * time.Second}
	if ctx == nil {
		ctx = context.Background()
	}
	ctx, stop := signal.NotifyContext(ctx, os.Interrupt, syscall.SIGTERM)
	defer stop()
	go func() {
		<-ctx.Done()
		v.Close() // ends the event streams, which Shutdown would wait for
		sctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
		defer cancel()
		_ = srv.Shutdown(sctx)
	}()
	if err := srv.Serve(l); err != nil && !errors.Is(err, http.ErrServerClosed) {
		return withCode(exitError, err)
	}
	return nil
}

// campaignList lists a state database's campaigns for the viewer.
type campaignList struct{ st *campaign.Store }

// campaignLister is the campaigns of the state database db (their tables
// created if missing, as `campaign` does).
func campaignLister(db *journal.PGStore) (viewer.Campaigns, error) {
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	if err := campaign.EnsureSchema(ctx, db.Pool()); err != nil {
		return nil, err
	}
	st, err := campaign.NewStore(db.Pool())
	if err != nil {
		return nil, err
	}
	return campaignList{st}, nil
}

func (l campaignList) Campaigns() ([]viewer.Campaign, error) {
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	cs, err := l.st.List(ctx)
	if err != nil {
		return nil, err
	}
	out := make([]viewer.Campaign, len(cs))
	for i, c := range cs {
		out[i] = viewer.Campaign{Name: c.Name + " (" + c.State + ")", Counts: c.Counts}
	}
	return out, nil
}
