data_dir = "./data"

queue {
  max_size = "ten gigs"
}

listener "public" {
  address  = "127.0.0.1"
  max_body = "3MiB"
  read_timeout = "15 seconds"
}

channel "twilio" {
  listener = "public"
  path     = "hooks/twilio"
  provider = "twilio"
  auth "twilio" {
    auth_tokens = [env("EDGERELAY_TEST_UNSET_OLD", "")]
  }
  ordering   = "fifo"
  reject_status = 200
  forward_to = ["crm"]
}

backend "crm" {
  url     = "crm.internal/events"
  timeout = "-1s"
  headers = { "X-Tenant" = "a", "x-tenant" = "b" }
  retry {
    initial = "10s"
    max     = "1s"
  }
}

backend "zero" {
  url     = "http://127.0.0.1:9/events"
  timeout = "0s"
}
