package swift

import (
	"net/http"
	"strconv"
	"sync"
	"time"
)

// maxRetryAfter bounds how long a Retry-After makes the copy wait.
const maxRetryAfter = 5 * time.Minute

// retryAfterTransport notes the Retry-After of Swift's 429, 498 and 503
// answers (as rclone honours it): the copy's retries wait at least that
// long before sending the object again.
type retryAfterTransport struct{ base http.RoundTripper }

// notBefore is, per host, the time a Retry-After asked to wait until.
var notBefore sync.Map // host → time.Time

func (t retryAfterTransport) RoundTrip(req *http.Request) (*http.Response, error) {
	resp, err := t.base.RoundTrip(req)
	if err != nil {
		return resp, err
	}
	switch resp.StatusCode {
	case http.StatusTooManyRequests, http.StatusServiceUnavailable, 498:
		if d, ok := parseRetryAfter(resp.Header.Get("Retry-After"), time.Now()); ok {
			until := time.Now().Add(d)
			if prev, ok := notBefore.Load(req.URL.Host); !ok || prev.(time.Time).Before(until) {
				notBefore.Store(req.URL.Host, until)
			}
		}
	}
	return resp, nil
}

// parseRetryAfter reads delay-seconds or an HTTP date, bounded by
// maxRetryAfter.
func parseRetryAfter(v string, now time.Time) (time.Duration, bool) {
	if v == "" {
		return 0, false
	}
	var d time.Duration
	if s, err := strconv.ParseFloat(v, 64); err == nil && s >= 0 {
		d = time.Duration(s * float64(time.Second))
	} else if t, err := http.ParseTime(v); err == nil {
		d = t.Sub(now)
	} else {
		return 0, false
	}
	return min(max(d, 0), maxRetryAfter), true
}

// retryAfterWait is how long until every host that sent a Retry-After
// may be asked again.
func retryAfterWait() time.Duration {
	var wait time.Duration
	now := time.Now()
	notBefore.Range(func(k, v any) bool {
		if d := v.(time.Time).Sub(now); d > wait {
			wait = d
		} else if d <= 0 {
			notBefore.CompareAndDelete(k, v)
		}
		return true
	})
	return wait
}
