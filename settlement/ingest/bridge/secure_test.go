package bridge_test

import (
	"crypto/ecdsa"
	"crypto/elliptic"
	"crypto/rand"
	"crypto/x509"
	"crypto/x509/pkix"
	"encoding/pem"
	"math/big"
	"net"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/prometheus/client_golang/prometheus"

	"github.com/gridsettle/gridsettle/settlement/ingest/bridge"
	"github.com/gridsettle/gridsettle/settlement/ingest/bridge/mosquittotest"
	"github.com/gridsettle/gridsettle/settlement/kafka"
	"github.com/gridsettle/gridsettle/settlement/kafka/kafkatest"
)

// TestTLSAndPassword: the bridge reaches a broker that takes only TLS
// (verified against --mqtt-tls-ca) and a user name and password; a wrong
// password ends Run at once with the broker's refusal instead of retrying
// in silence.
func TestTLSAndPassword(t *testing.T) {
	dir := t.TempDir()
	ca, cert, key := writeCerts(t, dir)
	passwd := filepath.Join(dir, "passwd")
	bin, err := exec.LookPath("mosquitto_passwd")
	if err != nil {
		t.Fatalf("mosquitto_passwd (Debian package mosquitto) not found: %v", err)
	}
	if out, err := exec.Command(bin, "-c", "-b", passwd, "bridge", "s3cret").CombinedOutput(); err != nil {
		t.Fatalf("mosquitto_passwd: %v\n%s", err, out)
	}
	mq := mosquittotest.Start(t, "cafile "+ca, "certfile "+cert, "keyfile "+key, "allow_anonymous false", "password_file "+passwd)
	url := "ssl://" + mq.Addr
	brokers := kafkatest.New(t)
	cfg := bridge.Config{Broker: url, ClientID: "bridge-tls", Username: "bridge", Password: "s3cret", TLSCAFile: ca,
		Kafka: kafka.Config{Brokers: brokers}, Topics: kafka.DefaultTopics()}
	log := slogDiscard()

	wrong := cfg
	wrong.Password = "guess"
	b, err := bridge.New(wrong, log, nil)
	if err != nil {
		t.Fatal(err)
	}
	if err := b.Run(t.Context()); err == nil || !strings.Contains(err.Error(), "refused") {
		t.Fatalf("Run with a wrong password: %v, want the broker's refusal", err)
	}

	b, err = bridge.New(cfg, log, prometheus.NewRegistry())
	if err != nil {
		t.Fatal(err)
	}
	stop := run(t, b)
	m := message{topic: "gridsettle/reads/M1", payload: read("M1", 1)}
	publishTo(t, url, ca, "bridge", "s3cret", []message{m})
	recs := consume(t, brokers, 1)
	if err := stop(); err != nil {
		t.Fatalf("Run: %v", err)
	}
	if string(recs[0].Value) != string(m.payload) || string(recs[0].Key) != "M1" {
		t.Errorf("record %q key %q", recs[0].Value, recs[0].Key)
	}
}

// writeCerts writes a CA and a server certificate for 127.0.0.1 it signs.
func writeCerts(t *testing.T, dir string) (caPath, certPath, keyPath string) {
	t.Helper()
	caKey, err := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	if err != nil {
		t.Fatal(err)
	}
	caTmpl := &x509.Certificate{SerialNumber: big.NewInt(1), Subject: pkix.Name{CommonName: "bridge test CA"},
		NotBefore: time.Now().Add(-time.Hour), NotAfter: time.Now().Add(time.Hour), IsCA: true, BasicConstraintsValid: true,
		KeyUsage: x509.KeyUsageCertSign}
	caDER, err := x509.CreateCertificate(rand.Reader, caTmpl, caTmpl, &caKey.PublicKey, caKey)
	if err != nil {
		t.Fatal(err)
	}
	srvKey, err := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	if err != nil {
		t.Fatal(err)
	}
	srvTmpl := &x509.Certificate{SerialNumber: big.NewInt(2), Subject: pkix.Name{CommonName: "127.0.0.1"},
		NotBefore: time.Now().Add(-time.Hour), NotAfter: time.Now().Add(time.Hour), IPAddresses: []net.IP{net.IPv4(127, 0, 0, 1)},
		KeyUsage: x509.KeyUsageDigitalSignature, ExtKeyUsage: []x509.ExtKeyUsage{x509.ExtKeyUsageServerAuth}}
	srvDER, err := x509.CreateCertificate(rand.Reader, srvTmpl, caTmpl, &srvKey.PublicKey, caKey)
	if err != nil {
		t.Fatal(err)
	}
	keyDER, err := x509.MarshalECPrivateKey(srvKey)
	if err != nil {
		t.Fatal(err)
	}
	write := func(name, typ string, der []byte) string {
		p := filepath.Join(dir, name)
		if err := os.WriteFile(p, pem.EncodeToMemory(&pem.Block{Type: typ, Bytes: der}), 0o644); err != nil {
			t.Fatal(err)
		}
		return p
	}
	return write("ca.pem", "CERTIFICATE", caDER), write("server.pem", "CERTIFICATE", srvDER), write("server.key", "EC PRIVATE KEY", keyDER)
}
