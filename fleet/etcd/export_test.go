package etcd

// BuildHelper is buildHelper for the external tests (package etcd_test).
var BuildHelper = buildHelper
