// openloop: an HTTPS load generator for bench/load.sh, standard library only, HTTP/1.1 with keep-alive like the
// API server's webhook client. Two modes:
//
//	-rate R -duration D   open loop: requests are scheduled every 1/R s whatever the answers do, and each latency is
//	                      measured from the request's scheduled time (no coordinated omission).
//	-count N              closed loop: N requests as fast as -conns connections allow (used to reach a fixed count).
//
// Prints one JSON line: {"mode","requests","errors","non2xx","rps","p50_ms","p90_ms","p99_ms","max_ms","late"}.
// -timeline FILE (open loop) also writes one line per scheduled request, in schedule order: its scheduled time and its
// latency, both in microseconds from the run's start (latency -1: failed), after a first line "# start_unix_us T", so
// a tail can be told apart as a few stalls (latencies that fall by one interval per request) or a spread.
// Only loopback URLs are accepted; every run is bounded by -duration or -count and -timeout.
package main

import (
	"bytes"
	"crypto/tls"
	"crypto/x509"
	"encoding/json"
	"flag"
	"fmt"
	"io"
	"net/http"
	"net/url"
	"os"
	"runtime/debug"
	"sort"
	"sync"
	"sync/atomic"
	"time"
)

type result struct {
	Mode     string  `json:"mode"`
	Target   float64 `json:"target_rps,omitempty"`
	Requests int     `json:"requests"`
	Errors   int64   `json:"errors"`
	Non2xx   int64   `json:"non2xx"`
	RPS      float64 `json:"rps"`
	P50      float64 `json:"p50_ms"`
	P90      float64 `json:"p90_ms"`
	P99      float64 `json:"p99_ms"`
	Max      float64 `json:"max_ms"`
	Late     int64   `json:"late"`
}

func fail(format string, args ...any) {
	fmt.Fprintf(os.Stderr, "openloop: "+format+"\n", args...)
	os.Exit(2)
}

func main() {
	target := flag.String("url", "", "https URL on loopback")
	bodyFile := flag.String("body", "", "request body (JSON)")
	caFile := flag.String("ca", "", "CA certificate (PEM) that signed the server's certificate")
	rate := flag.Float64("rate", 0, "open loop: requests per second")
	duration := flag.Duration("duration", 10*time.Second, "open loop: how long to send")
	count := flag.Int("count", 0, "closed loop: how many requests")
	conns := flag.Int("conns", 8, "connections: the most open at once (a request waits for a free one, and its wait counts)")
	timeout := flag.Duration("timeout", 10*time.Second, "per-request timeout")
	timeline := flag.String("timeline", "", "open loop: write each request's scheduled time and latency (µs) to this file")
	flag.Parse()
	debug.SetGCPercent(400) // fewer collections in the client while it measures

	u, err := url.Parse(*target)
	if err != nil || u.Scheme != "https" || (u.Hostname() != "127.0.0.1" && u.Hostname() != "localhost" && u.Hostname() != "::1") {
		fail("refusing %q: only https:// on loopback", *target)
	}
	if (*rate > 0) == (*count > 0) {
		fail("give exactly one of -rate and -count")
	}
	if *timeline != "" && *rate == 0 {
		fail("-timeline needs -rate")
	}
	if *duration > 10*time.Minute || *count > 1_000_000 {
		fail("bounded runs only: -duration ≤ 10m, -count ≤ 1000000")
	}
	body, err := os.ReadFile(*bodyFile)
	if err != nil {
		fail("%v", err)
	}
	pool := x509.NewCertPool()
	if pem, err := os.ReadFile(*caFile); err != nil || !pool.AppendCertsFromPEM(pem) {
		fail("cannot read a CA from %q", *caFile)
	}
	transport := &http.Transport{
		TLSClientConfig:     &tls.Config{RootCAs: pool, NextProtos: []string{"http/1.1"}},
		TLSNextProto:        map[string]func(string, *tls.Conn) http.RoundTripper{},
		MaxIdleConns:        4096,
		MaxIdleConnsPerHost: 4096,
		MaxConnsPerHost:     *conns,
		IdleConnTimeout:     time.Minute,
	}
	client := &http.Client{Transport: transport, Timeout: *timeout}
	var errors, non2xx, late atomic.Int64
	send := func() bool {
		resp, err := client.Post(*target, "application/json", bytes.NewReader(body))
		if err != nil {
			errors.Add(1)
			return false
		}
		_, err = io.Copy(io.Discard, resp.Body)
		resp.Body.Close()
		if err != nil {
			errors.Add(1)
			return false
		}
		if resp.StatusCode >= 300 {
			non2xx.Add(1)
		}
		return true
	}
	// Warm the connections so the TLS handshakes are not in the figures.
	var warm sync.WaitGroup
	for i := 0; i < *conns; i++ {
		warm.Add(1)
		go func() { defer warm.Done(); send() }()
	}
	warm.Wait()
	errors.Store(0)
	non2xx.Store(0)

	var mu sync.Mutex
	latencies := make([]time.Duration, 0, 1<<16)
	record := func(d time.Duration) {
		mu.Lock()
		latencies = append(latencies, d)
		mu.Unlock()
	}
	res := result{}
	start := time.Now()
	var wg sync.WaitGroup
	if *rate > 0 {
		// A scheduler hands due times to one worker per connection; a request whose worker is busy waits in the
		// queue, and that wait counts (its latency runs from its due time). No goroutine per request, so the client's
		// own scheduling and garbage stay out of the figures as far as they can.
		res.Mode, res.Target = "open", *rate
		interval := time.Duration(float64(time.Second) / *rate)
		total := int(duration.Seconds() * *rate)
		type slot struct {
			i  int
			at time.Time
		}
		due := make(chan slot, total)
		// Each request's latency by its place in the schedule (-1: failed); written only by the worker that sent it.
		var each []time.Duration
		if *timeline != "" {
			each = make([]time.Duration, total)
		}
		for c := 0; c < *conns; c++ {
			wg.Add(1)
			go func() {
				defer wg.Done()
				for s := range due {
					if send() {
						d := time.Since(s.at)
						record(d)
						if each != nil {
							each[s.i] = d
						}
					} else if each != nil {
						each[s.i] = -1
					}
				}
			}()
		}
		for i := 0; i < total; i++ {
			at := start.Add(time.Duration(i) * interval)
			if wait := time.Until(at); wait > 0 {
				time.Sleep(wait)
			} else if wait < -time.Millisecond {
				late.Add(1) // the scheduler itself fell behind by more than 1 ms
			}
			due <- slot{i, at}
		}
		close(due)
		defer func() {
			if each == nil {
				return
			}
			var out bytes.Buffer
			fmt.Fprintf(&out, "# start_unix_us %d\n", start.UnixMicro())
			for i, d := range each {
				lat := d.Microseconds()
				if d < 0 {
					lat = -1
				}
				fmt.Fprintf(&out, "%d %d\n", (time.Duration(i) * interval).Microseconds(), lat)
			}
			if err := os.WriteFile(*timeline, out.Bytes(), 0o644); err != nil {
				fail("%v", err)
			}
		}()
	} else {
		res.Mode = "closed"
		var next atomic.Int64
		for c := 0; c < *conns; c++ {
			wg.Add(1)
			go func() {
				defer wg.Done()
				for next.Add(1) <= int64(*count) {
					begin := time.Now()
					if send() {
						record(time.Since(begin))
					}
				}
			}()
		}
	}
	wg.Wait()
	elapsed := time.Since(start)
	sort.Slice(latencies, func(i, j int) bool { return latencies[i] < latencies[j] })
	pct := func(p float64) float64 {
		if len(latencies) == 0 {
			return 0
		}
		i := int(p / 100 * float64(len(latencies)-1))
		return float64(latencies[i].Microseconds()) / 1000
	}
	res.Requests = len(latencies)
	res.Errors, res.Non2xx, res.Late = errors.Load(), non2xx.Load(), late.Load()
	res.RPS = float64(len(latencies)) / elapsed.Seconds()
	res.P50, res.P90, res.P99, res.Max = pct(50), pct(90), pct(99), pct(100)
	out, _ := json.Marshal(res)
	fmt.Println(string(out))
}
