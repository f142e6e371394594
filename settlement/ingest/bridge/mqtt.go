package bridge

import (
	"context"
	"errors"
	"fmt"
	"time"

	mqtt "github.com/eclipse/paho.mqtt.golang"
	"github.com/eclipse/paho.mqtt.golang/packets"
)

// connect starts the MQTT client: routes first, so the messages the broker
// kept for the session, which it sends right after CONNACK, find their
// handler; subscriptions on every (re)connection. The first connection is
// retried until ctx ends, each failure logged, except a refusal (bad
// credentials, client id rejected), which no retry cures; once connected,
// paho reconnects by itself.
func (b *Bridge) connect(ctx context.Context) (mqtt.Client, error) {
	o := mqtt.NewClientOptions().AddBroker(b.cfg.Broker).SetClientID(b.cfg.ClientID).
		SetCleanSession(false).SetAutoAckDisabled(true).SetOrderMatters(true).
		SetAutoReconnect(true).SetMaxReconnectInterval(10 * time.Second).SetKeepAlive(30 * time.Second).
		SetConnectTimeout(10 * time.Second).
		SetUsername(b.cfg.Username).SetPassword(b.cfg.Password).
		SetDefaultPublishHandler(b.handler(unrouted))
	if b.tls != nil {
		o.SetTLSConfig(b.tls)
	}
	filters := map[string]byte{b.cfg.ReadsFilter: 1, b.cfg.PricesFilter: 1}
	o.SetOnConnectHandler(func(c mqtt.Client) {
		b.m.connected.Set(1)
		b.log.Info("mqtt connected", "broker", b.cfg.Broker, "client_id", b.cfg.ClientID)
		// Not waited for here: the handler runs on paho's connection path.
		go func() {
			t := c.SubscribeMultiple(filters, nil)
			t.Wait()
			if err := t.Error(); err != nil {
				b.log.Error("mqtt subscribe failed; it is tried again at the next connection", "filters", filters, "err", err)
				return
			}
			b.subscribed.Store(true)
			b.log.Info("mqtt subscribed", "reads", b.cfg.ReadsFilter, "prices", b.cfg.PricesFilter)
		}()
	})
	o.SetConnectionLostHandler(func(_ mqtt.Client, err error) {
		b.m.connected.Set(0)
		b.subscribed.Store(false)
		b.log.Warn("mqtt connection lost; reconnecting (unacknowledged messages are delivered again)", "err", err)
	})
	c := mqtt.NewClient(o)
	c.AddRoute(b.cfg.ReadsFilter, b.handler(Reads))
	c.AddRoute(b.cfg.PricesFilter, b.handler(Prices))
	for backoff := 100 * time.Millisecond; ; backoff = min(2*backoff, maxBackoff) {
		t := c.Connect()
		select {
		case <-t.Done():
		case <-ctx.Done():
			c.Disconnect(0)
			return nil, ctx.Err()
		}
		err := t.Error()
		if err == nil {
			return c, nil
		}
		if refused(err) {
			return nil, fmt.Errorf("mqtt broker %s refused client %s: %w", b.cfg.Broker, b.cfg.ClientID, err)
		}
		b.log.Warn("mqtt connect failed; retrying", "broker", b.cfg.Broker, "err", err, "in", backoff)
		select {
		case <-ctx.Done():
			return nil, ctx.Err()
		case <-time.After(backoff):
		}
	}
}

// refused reports a CONNACK refusal that retrying cannot cure.
func refused(err error) bool {
	return errors.Is(err, packets.ErrorRefusedBadUsernameOrPassword) || errors.Is(err, packets.ErrorRefusedNotAuthorised) ||
		errors.Is(err, packets.ErrorRefusedIDRejected) || errors.Is(err, packets.ErrorRefusedBadProtocolVersion)
}

// unrouted is the kind of a message matching no filter.
const unrouted Kind = -1

func (b *Bridge) handler(k Kind) mqtt.MessageHandler {
	return func(_ mqtt.Client, m mqtt.Message) {
		b.m.in.WithLabelValues(k.String()).Inc()
		if m.Duplicate() {
			b.m.redeliveries.WithLabelValues(k.String()).Inc()
		}
		select {
		case b.in <- Delivery{Kind: k, Topic: m.Topic(), Payload: m.Payload(), Ack: m.Ack}:
		case <-b.stop:
		}
	}
}
