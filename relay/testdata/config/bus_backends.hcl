data_dir = "./data"

listener "public" {
  address = "127.0.0.1:8443"
}

channel "meta" {
  listener = "public"
  path     = "/hooks/meta"
  provider = "meta"
  auth "hmac" {
    secrets = ["s3cret"]
  }
  forward_to = ["none", "both", "k", "n"]
}

backend "none" {
  timeout = "5s"
}

backend "both" {
  url = "http://127.0.0.1:9800/"
  kafka {
    brokers = ["127.0.0.1:9092"]
    topic   = "wa.{channel}"
  }
}

backend "k" {
  kafka {
    brokers = ["kafka-1"]
    topic   = "wa.{chanel}"
    sasl {
      mechanism = "SCRAM-SHA-1"
      username  = "relay"
    }
  }
  sign {
    secret = "whsec_MfKQ9r8GKYqrTwjUPD8ILPZIo2LaLaSw"
  }
}

backend "n" {
  nats {
    servers = ["http://nats-1:4222"]
    subject = "wa.*.{provider}"
    token   = "t"
    user    = "relay"
  }
}
