# Several problems at once: no data_dir, a channel with neither path nor
# auth, misspelt listener and backend names, two unset env() variables.
listener "public" { address = "127.0.0.1:8443" }
channel "c1" {
  listener = "publik"
  provider = "meta"
  forward_to = ["crmm"]
}
channel "c2" {
  listener = "public"
  path = "/x"
  auth "hmac" { secrets = [env("EDGERELAY_TEST_UNSET_VAR")] }
  verify_token = env("EDGERELAY_TEST_UNSET_VAR2")
  forward_to = ["crm"]
}
backend "crm" { url = "http://127.0.0.1:1/" }
