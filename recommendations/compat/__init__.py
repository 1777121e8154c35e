"""Amazon Personalize's runtime and events HTTP APIs over the local engine, for unchanged boto3 apps."""
