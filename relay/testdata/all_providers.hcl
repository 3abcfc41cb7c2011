# One channel per provider profile, each with the auth its provider uses,
# all forwarding to b0 (and Meta's routed number to b1). Tests replace
# the two backend URLs (127.0.0.1:9801/b0, :9802/b1) and SECRET- to build a
# forger's copy. It validates as is: edgerelay validate -config all_providers.hcl
data_dir = "./data"
log { level = "debug" }
queue { retain = "1h" }
listener "public" { address = "127.0.0.1:0" }
admin { address = "127.0.0.1:0" }

channel "meta" {
  listener = "public"
  path = "/meta"
  provider = "meta"
  auth "hmac" { secrets = ["SECRET-meta"] }
  forward_to = ["b0"]
  route {
    when = { phone_number_id = "106540352242922" }
    forward_to = ["b1"]
  }
}
channel "twilio" {
  listener = "public"
  path = "/twilio"
  provider = "twilio"
  public_url = "https://hooks.example.com/hooks/twilio"
  auth "twilio" { auth_tokens = ["SECRET-twilio"] }
  forward_to = ["b0"]
}
channel "infobip" {
  listener = "public"
  path = "/infobip"
  provider = "infobip"
  auth "basic" {
    user "infobip" { password = "SECRET-infobip" }
  }
  forward_to = ["b0"]
}
channel "gupshup" {
  listener = "public"
  path = "/gupshup"
  provider = "gupshup"
  auth "header" { values = ["SECRET-gupshup"] }
  forward_to = ["b0"]
}
channel "karix" {
  listener = "public"
  path = "/karix"
  provider = "karix"
  auth "header" { values = ["SECRET-karix"] }
  forward_to = ["b0"]
}
channel "netcore" {
  listener = "public"
  path = "/netcore"
  provider = "netcore"
  auth "header" { values = ["SECRET-netcore"] }
  forward_to = ["b0"]
}
channel "webex" {
  listener = "public"
  path = "/webex"
  provider = "webex"
  auth "hmac" { secrets = ["SECRET-webex"] }
  forward_to = ["b0"]
}
channel "vonage" {
  listener = "public"
  path = "/vonage"
  provider = "vonage"
  reject_status = 503
  auth "jwt" { secrets = ["SECRET-vonage-0123456789abcdef0123"] }
  forward_to = ["b0"]
}
channel "messagebird" {
  listener = "public"
  path = "/messagebird"
  provider = "messagebird"
  public_url = "https://hooks.example.com/hooks/messagebird"
  auth "jwt" { secrets = ["SECRET-messagebird-0123456789abcdef"] }
  forward_to = ["b0"]
}
channel "sinch" {
  listener = "public"
  path = "/sinch"
  provider = "sinch"
  auth "basic" {
    user "sinch" { password = "SECRET-sinch" }
  }
  forward_to = ["b0"]
}
channel "standard" {
  listener = "public"
  path = "/standard"
  provider = "standard"
  auth "standard_webhooks" { secrets = ["whsec_MfKQ9r8GKYqrTwjUPD8ILPZIo2LaLaSw"] }
  forward_to = ["b0"]
}
channel "generic" {
  listener = "public"
  path = "/generic"
  provider = "generic"
  event_id_header = "X-Event-Id"
  auth "hmac" {
    header = "X-Signature"
    secrets = ["SECRET-generic"]
  }
  forward_to = ["b0"]
}
backend "b0" {
  url = "http://127.0.0.1:9801/b0"
  retry {
    initial = "20ms"
    max = "100ms"
  }
}
backend "b1" {
  url = "http://127.0.0.1:9802/b1"
  retry {
    initial = "20ms"
    max = "100ms"
  }
}
