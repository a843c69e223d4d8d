// Package containers manages hostctl's system containers: the atomic CLI's
// "system containers" (atomic install --system), run by runc under systemd.
//
// This file set holds the parts that need neither OSTree nor a running
// service manager: the template language of an image's /exports (Python's
// string.Template), the precedence of template values, the exports'
// manifest.json, the OCI runtime configuration check and default, the systemd
// unit and tmpfiles rendering, the slot's info file and the hostfs/ files
// copied onto the host. Layer application lives in the layer sub-package.
package containers
