package main

import (
	"context"
	"errors"
	"fmt"
	"log"
	"net"
	"net/http"
	"os"
	"os/signal"
	"syscall"
	"time"

	"github.com/spf13/cobra"

	"github.com/runbookdev/runbook/plugins/hubic"
	"github.com/runbookdev/runbook/plugins/hubic/hubicapi"
)

func init() {
	var listen, apiURL, clientID, user string
	gw := &cobra.Command{
		Use:   "hubic-gateway",
		Short: "Serve Swift v1.0 authentication backed by HubiC OAuth, for unmodified Swift clients",
		Long: `Serves Swift v1.0 authentication (GET /auth/v1.0) backed by the HubiC OAuth2
API, like hubic2swiftgate: a client sending X-Auth-User (--user, default "hubic")
and X-Auth-Key gets the account's storage URL and token, so the swift CLI and
rclone's swift backend work unchanged:

  swift -A http://127.0.0.1:8089/auth/v1.0 -U hubic -K "$KEY" list

The secrets come from the environment, never from flags: HUBIC_CLIENT_SECRET,
HUBIC_REFRESH_TOKEN (from hubic.authorize) and HUBIC_GATEWAY_KEY (the key
clients must send). Credentials are cached and fetched again when they expire
or Swift refuses them. No X-Auth-Token-Expires is sent: clients authenticate
again on a 401. Status codes are hubic2swiftgate's: 403 for a missing or
wrong user or key, the API's own status when it refuses the gateway (400 for
a revoked refresh token, which is then never sent again), 502 when the API
cannot be reached.`,
		Args: cobra.NoArgs,
		RunE: func(cmd *cobra.Command, _ []string) error {
			secret, refresh, key := os.Getenv("HUBIC_CLIENT_SECRET"), os.Getenv("HUBIC_REFRESH_TOKEN"), os.Getenv("HUBIC_GATEWAY_KEY")
			if clientID == "" || secret == "" || refresh == "" || key == "" {
				return withCode(exitError, errors.New("hubic-gateway needs --client-id and the environment variables HUBIC_CLIENT_SECRET, HUBIC_REFRESH_TOKEN and HUBIC_GATEWAY_KEY"))
			}
			logger := log.New(cmd.ErrOrStderr(), "hubic-gateway: ", log.LstdFlags)
			g := &hubic.Gateway{
				Client: hubicapi.New(hubicapi.Config{APIURL: apiURL, ClientID: clientID, ClientSecret: secret}, refresh),
				User:   user, Key: key, Logf: logger.Printf,
			}
			l, err := net.Listen("tcp", listen)
			if err != nil {
				return withCode(exitError, fmt.Errorf("listen on %s: %w", listen, err))
			}
			fmt.Fprintf(cmd.OutOrStdout(), "serving Swift v1.0 auth at http://%s/auth/v1.0\n", l.Addr())
			srv := &http.Server{Handler: g, ReadHeaderTimeout: 10 * time.Second}
			ctx, stop := signal.NotifyContext(cmd.Context(), os.Interrupt, syscall.SIGTERM)
			defer stop()
			go func() {
				<-ctx.Done()
				sctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
				defer cancel()
				_ = srv.Shutdown(sctx)
			}()
			if err := srv.Serve(l); err != nil && !errors.Is(err, http.ErrServerClosed) {
				return withCode(exitError, err)
			}
			return nil
		},
	}
	gw.Flags().StringVar(&listen, "listen", "127.0.0.1:8089", "address to listen on")
	gw.Flags().StringVar(&apiURL, "api-url", hubicapi.DefaultAPIURL, "HubiC API base URL")
	gw.Flags().StringVar(&clientID, "client-id", "", "OAuth client id")
	gw.Flags().StringVar(&user, "user", "hubic", "the X-Auth-User clients must send")
	serveCmd.AddCommand(gw)
}
