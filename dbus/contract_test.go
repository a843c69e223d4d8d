package dbus

import (
	"encoding/xml"
	"reflect"
	"strings"
	"testing"

	godbus "github.com/godbus/dbus/v5"
	"github.com/godbus/dbus/v5/introspect"
)

// TestContractMatchesMethods checks that the checked-in interface XML and
// the Go methods the server exports agree on every method and signature, so
// introspection (which serves the XML verbatim) tells clients the truth.
func TestContractMatchesMethods(t *testing.T) {
	for _, tc := range []struct {
		xml   string
		iface string
		impl  any
	}{
		{HostXML, HostInterface, hostObject{}},
		{TransactionXML, TransactionInterface, &transactionObject{}},
	} {
		var node introspect.Node
		if err := xml.Unmarshal([]byte(tc.xml), &node); err != nil {
			t.Fatalf("%s XML: %v", tc.iface, err)
		}
		var iface *introspect.Interface
		for i := range node.Interfaces {
			if node.Interfaces[i].Name == tc.iface {
				iface = &node.Interfaces[i]
			}
		}
		if iface == nil {
			t.Fatalf("XML lacks interface %s", tc.iface)
		}
		typ := reflect.TypeOf(tc.impl)
		exported := map[string]bool{}
		for i := 0; i < typ.NumMethod(); i++ {
			exported[typ.Method(i).Name] = true
		}
		for _, m := range iface.Methods {
			gm, ok := typ.MethodByName(m.Name)
			if !ok {
				t.Errorf("%s.%s is in the XML but not implemented", tc.iface, m.Name)
				continue
			}
			delete(exported, m.Name)
			var in, out strings.Builder
			for i := 1; i < gm.Type.NumIn(); i++ {
				at := gm.Type.In(i)
				if at == reflect.TypeOf(godbus.Sender("")) {
					continue
				}
				in.WriteString(godbus.SignatureOfType(at).String())
			}
			for i := 0; i < gm.Type.NumOut(); i++ {
				at := gm.Type.Out(i)
				if at == reflect.TypeOf(&godbus.Error{}) {
					continue
				}
				out.WriteString(godbus.SignatureOfType(at).String())
			}
			var xin, xout strings.Builder
			for _, a := range m.Args {
				if a.Direction == "out" {
					xout.WriteString(a.Type)
				} else {
					xin.WriteString(a.Type)
				}
			}
			if in.String() != xin.String() || out.String() != xout.String() {
				t.Errorf("%s.%s: Go (%s)->(%s), XML (%s)->(%s)", tc.iface, m.Name, in.String(), out.String(), xin.String(), xout.String())
			}
		}
		for name := range exported {
			t.Errorf("%s.%s is exported on the bus but missing from the XML", tc.iface, name)
		}
	}
}
