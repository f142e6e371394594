package publish_test

import (
	"bytes"
	"context"
	"strings"

	"github.com/cloudevents/sdk-go/v2/binding"
	"github.com/cloudevents/sdk-go/v2/binding/format"
	"github.com/cloudevents/sdk-go/v2/binding/spec"
	"github.com/cloudevents/sdk-go/v2/event"

	"github.com/gridsettle/gridsettle/settlement/outbox"
)

// ceSpecs are the CloudEvents versions with the Kafka binding's header
// prefix.
var ceSpecs = spec.WithPrefix("ce_")

// kafkaMessage is a Kafka record read as the CloudEvents Kafka protocol
// binding reads one (as the SDK's sarama binding does), for the SDK's
// binding.ToEvent: binary mode when it carries ce_specversion, every ce_
// header an attribute or extension, content-type the datacontenttype.
type kafkaMessage struct {
	headers map[string]string
	value   []byte
}

var (
	_ binding.MessageReader         = kafkaMessage{}
	_ binding.MessageMetadataReader = kafkaMessage{}
)

func (m kafkaMessage) version() spec.Version {
	return ceSpecs.Version(m.headers[ceSpecs.PrefixedSpecVersionName()])
}

func (m kafkaMessage) ReadEncoding() binding.Encoding {
	if m.version() != nil {
		return binding.EncodingBinary
	}
	if format.Lookup(m.headers[outbox.HeaderContentType]) != nil {
		return binding.EncodingStructured
	}
	return binding.EncodingUnknown
}

func (m kafkaMessage) ReadStructured(ctx context.Context, w binding.StructuredWriter) error {
	f := format.Lookup(m.headers[outbox.HeaderContentType])
	if f == nil {
		return binding.ErrNotStructured
	}
	return w.SetStructuredEvent(ctx, f, bytes.NewReader(m.value))
}

func (m kafkaMessage) ReadBinary(_ context.Context, w binding.BinaryWriter) error {
	v := m.version()
	if v == nil {
		return binding.ErrNotBinary
	}
	for k, x := range m.headers {
		var err error
		switch {
		case strings.HasPrefix(k, "ce_"):
			if attr := v.Attribute(k); attr != nil {
				err = w.SetAttribute(attr, x)
			} else {
				err = w.SetExtension(strings.TrimPrefix(k, "ce_"), x)
			}
		case k == outbox.HeaderContentType:
			err = w.SetAttribute(v.AttributeFromKind(spec.DataContentType), x)
		}
		if err != nil {
			return err
		}
	}
	if m.value != nil {
		return w.SetData(bytes.NewReader(m.value))
	}
	return nil
}

func (m kafkaMessage) GetAttribute(k spec.Kind) (spec.Attribute, any) {
	v := m.version()
	if v == nil {
		return nil, nil
	}
	attr := v.AttributeFromKind(k)
	if attr == nil {
		return nil, nil
	}
	name := attr.PrefixedName()
	if k == spec.DataContentType {
		name = outbox.HeaderContentType
	}
	if x, ok := m.headers[name]; ok {
		return attr, x
	}
	return attr, nil
}

func (m kafkaMessage) GetExtension(name string) any {
	if x, ok := m.headers["ce_"+name]; ok {
		return x
	}
	return nil
}

// toEvent is the CloudEvent the SDK reads from a record, validated.
func toEvent(ctx context.Context, headers map[string]string, value []byte) (*event.Event, error) {
	ev, err := binding.ToEvent(ctx, kafkaMessage{headers, value})
	if err != nil {
		return nil, err
	}
	return ev, ev.Validate()
}
