# Sourced by umbrelOS (not executed). A fixed address: Tor's HiddenServicePort needs an IP.
export APP_STROM_IP="10.21.21.216"
export APP_STROM_OCPP_PORT="9216"

# The onion address of strom's public pages and OCPP (torrc.template), once Tor made it.
public_hidden_service_file="${EXPORTS_TOR_DATA_DIR}/app-${EXPORTS_APP_ID}-public/hostname"
export APP_STROM_HIDDEN_SERVICE="$(cat "${public_hidden_service_file}" 2>/dev/null || echo "notyetset.onion")"
