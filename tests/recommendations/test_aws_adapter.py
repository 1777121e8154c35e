"""The AWS adapter: clients from settings, never at import time; AWS errors become domain errors (Stubber)."""

import importlib
from typing import Any

import boto3
import pytest
from botocore.exceptions import ConnectTimeoutError, EndpointConnectionError, ReadTimeoutError
from botocore.stub import Stubber

from recommendations.backends import aws
from recommendations.errors import (
    PersonalizeAlreadyExistsError,
    PersonalizeConfigError,
    PersonalizeError,
    PersonalizeInvalidInputError,
    PersonalizeLimitExceededError,
    PersonalizeNotFoundError,
    PersonalizeRetryableError,
)

CAMPAIGN_ARN = "arn:aws:personalize:us-east-1:123456789012:campaign/shop-home"
GROUP_ARN = "arn:aws:personalize:us-east-1:123456789012:dataset-group/default"
KMS_KEY_ARN = "arn:aws:kms:us-east-1:123456789012:key/1234abcd-12ab-34cd-56ef-1234567890ab"


pytestmark = pytest.mark.usefixtures("aws_sandbox")


def campaign_response() -> dict[str, Any]:
    """A DescribeCampaign response as Personalize returns it."""
    return {
        "campaign": {
            "name": "shop-home",
            "campaignArn": CAMPAIGN_ARN,
            "solutionVersionArn": "arn:aws:personalize:us-east-1:123456789012:solution/home/abc",
            "minProvisionedTPS": 1,
            "status": "ACTIVE",
        }
    }


# --- Stubbed calls return their responses -------------------------------------------------------------


def test_describe_campaign_returns_the_stubbed_response() -> None:
    # Given a personalize client whose DescribeCampaign is stubbed for one campaign ARN
    client = aws.personalize_client()
    with Stubber(client) as stubber:
        stubber.add_response("describe_campaign", campaign_response(), {"campaignArn": CAMPAIGN_ARN})

        # When the adapter makes the call
        response = aws.aws_call(client, "describe_campaign", campaignArn=CAMPAIGN_ARN)

        # Then the response comes back unchanged and the stub was used exactly as expected
        assert response["campaign"]["status"] == "ACTIVE"
        assert response["campaign"]["campaignArn"] == CAMPAIGN_ARN
        stubber.assert_no_pending_responses()


def test_create_dataset_group_sends_kms_key_and_role() -> None:
    # Given CreateDatasetGroup stubbed with the exact request the backend will send
    client = aws.personalize_client()
    params = {
        "name": "default",
        "roleArn": "arn:aws:iam::123456789012:role/PersonalizeRole",
        "kmsKeyArn": KMS_KEY_ARN,
    }
    with Stubber(client) as stubber:
        stubber.add_response("create_dataset_group", {"datasetGroupArn": GROUP_ARN}, params)

        # When the adapter makes the call
        response = aws.aws_call(client, "create_dataset_group", **params)

        # Then the new group's ARN comes back
        assert response["datasetGroupArn"] == GROUP_ARN
        stubber.assert_no_pending_responses()


def test_aws_errors_context_manager_passes_results_through() -> None:
    # Given a stubbed GetRecommendations on the runtime client
    client = aws.personalize_runtime_client()
    with Stubber(client) as stubber:
        stubber.add_response("get_recommendations", {"itemList": [{"itemId": "42", "score": 0.5}]})

        # When it is called directly inside aws_errors
        with aws.aws_errors("GetRecommendations"):
            response = client.get_recommendations(campaignArn=CAMPAIGN_ARN, userId="u1", numResults=5)

        # Then the result is untouched
        assert response["itemList"] == [{"itemId": "42", "score": 0.5}]


# --- AWS error codes become domain errors ---------------------------------------------------------------


@pytest.mark.parametrize(
    ("code", "status", "error_class", "retryable"),
    [
        ("ThrottlingException", 400, PersonalizeRetryableError, True),
        ("TooManyRequestsException", 429, PersonalizeRetryableError, True),
        ("ServiceUnavailable", 503, PersonalizeRetryableError, True),
        ("SomethingBrokeInside", 500, PersonalizeRetryableError, True),
        ("ResourceNotFoundException", 404, PersonalizeNotFoundError, False),
        ("InvalidInputException", 400, PersonalizeInvalidInputError, False),
        ("ValidationException", 400, PersonalizeInvalidInputError, False),
        ("LimitExceededException", 400, PersonalizeLimitExceededError, False),
        ("ResourceAlreadyExistsException", 409, PersonalizeAlreadyExistsError, False),
        ("ResourceInUseException", 400, PersonalizeError, False),
        ("AccessDeniedException", 403, PersonalizeError, False),
    ],
)
def test_client_error_codes_map_to_domain_errors(
    code: str, status: int, error_class: type[PersonalizeError], retryable: bool
) -> None:
    # Given DescribeCampaign stubbed to fail with an AWS error code and message
    client = aws.personalize_client()
    with Stubber(client) as stubber:
        stubber.add_client_error(
            "describe_campaign",
            service_error_code=code,
            service_message=f"the message for {code}",
            http_status_code=status,
            expected_params={"campaignArn": CAMPAIGN_ARN},
        )

        # When the adapter makes the call
        with pytest.raises(PersonalizeError) as caught:
            aws.aws_call(client, "describe_campaign", campaignArn=CAMPAIGN_ARN)

    # Then the domain error has the right class and keeps the code, message, status and operation
    error = caught.value
    assert type(error) is error_class
    assert error.retryable is retryable
    assert error.code == code
    assert error.aws_message == f"the message for {code}"
    assert error.http_status == status
    assert error.operation == "DescribeCampaign"
    assert str(error) == f"DescribeCampaign failed: {code}: the message for {code}"


@pytest.mark.parametrize(
    "botocore_error",
    [
        EndpointConnectionError(endpoint_url="https://personalize.us-east-1.amazonaws.com/"),
        ConnectTimeoutError(endpoint_url="https://personalize.us-east-1.amazonaws.com/"),
        ReadTimeoutError(endpoint_url="https://personalize.us-east-1.amazonaws.com/"),
    ],
    ids=["EndpointConnectionError", "ConnectTimeoutError", "ReadTimeoutError"],
)
def test_unreachable_or_slow_endpoint_is_retryable(botocore_error: Exception) -> None:
    # Given a client whose request fails with a connection error before any response (nothing is sent)
    client = aws.personalize_client()

    def fail(**kwargs: Any) -> None:
        raise botocore_error

    client.meta.events.register("before-call.personalize.DescribeCampaign", fail)

    # When the adapter makes the call
    with pytest.raises(PersonalizeRetryableError) as caught:
        aws.aws_call(client, "describe_campaign", campaignArn=CAMPAIGN_ARN)

    # Then it is a retryable domain error naming the failure and the operation
    assert caught.value.retryable is True
    assert caught.value.code == type(botocore_error).__name__
    assert caught.value.operation == "DescribeCampaign"
    assert caught.value.__cause__ is botocore_error


# --- Request shapes are checked against the service model -----------------------------------------------


@pytest.mark.parametrize(
    "params",
    [
        {"campaignArn": 12345},  # wrong type
        {},  # required campaignArn missing
        {"campaignArn": CAMPAIGN_ARN, "campaignName": "shop-home"},  # not in the model
    ],
    ids=["wrong-type", "missing-required", "unknown-parameter"],
)
def test_request_with_wrong_shape_is_refused_as_invalid_input(params: dict[str, Any]) -> None:
    # Given a stubbed DescribeCampaign (the response is never reached)
    client = aws.personalize_client()
    with Stubber(client) as stubber:
        stubber.add_response("describe_campaign", campaign_response())

        # When the adapter sends a request that does not match the Personalize model
        with pytest.raises(PersonalizeInvalidInputError) as caught:
            aws.aws_call(client, "describe_campaign", **params)

        # Then it is refused before anything is sent, as non-retryable invalid input naming the operation
        assert caught.value.code == "ParamValidationError"
        assert caught.value.operation == "DescribeCampaign"
        assert caught.value.retryable is False
        assert "Parameter validation failed" in caught.value.aws_message
        with pytest.raises(AssertionError):  # the stubbed response is still waiting, unused
            stubber.assert_no_pending_responses()


def test_unknown_operation_is_a_programming_error() -> None:
    # Given a personalize client
    client = aws.personalize_client()

    # When an operation it does not have is called, then a ValueError names it
    with pytest.raises(ValueError, match="describe_campaing"):
        aws.aws_call(client, "describe_campaing", campaignArn=CAMPAIGN_ARN)


# --- Clients come from settings ---------------------------------------------------------------------------


@pytest.mark.parametrize(
    "factory",
    [aws.personalize_client, aws.personalize_runtime_client, aws.personalize_events_client, aws.s3_client],
    ids=["personalize", "personalize-runtime", "personalize-events", "s3"],
)
def test_missing_region_names_the_setting(settings: Any, factory: Any) -> None:
    # Given no AWS_REGION
    settings.AWS_REGION = ""

    # When a client is asked for, then the error names the setting
    with pytest.raises(PersonalizeConfigError, match="AWS_REGION") as caught:
        factory()
    assert caught.value.setting == "AWS_REGION"
    assert caught.value.retryable is False


def test_importing_the_adapter_builds_no_client(settings: Any, monkeypatch: pytest.MonkeyPatch) -> None:
    # Given no AWS_REGION and a boto3 that fails if anything builds a session
    settings.AWS_REGION = ""

    def no_session(*args: Any, **kwargs: Any) -> None:
        raise AssertionError("a boto3 session was built at import time")

    monkeypatch.setattr(boto3.session, "Session", no_session)
    monkeypatch.setattr(boto3, "client", no_session)

    # When the module is imported afresh, then nothing fails and nothing is built
    module = importlib.reload(aws)
    assert callable(module.personalize_client)


@pytest.mark.parametrize(
    ("factory", "setting", "service"),
    [
        (aws.personalize_client, "PERSONALIZE_ENDPOINT_URL", "personalize"),
        (aws.personalize_runtime_client, "PERSONALIZE_RUNTIME_ENDPOINT_URL", "personalize-runtime"),
        (aws.personalize_events_client, "PERSONALIZE_EVENTS_ENDPOINT_URL", "personalize-events"),
        (aws.s3_client, "S3_ENDPOINT_URL", "s3"),
    ],
    ids=["personalize", "personalize-runtime", "personalize-events", "s3"],
)
def test_endpoint_url_setting_reaches_the_client(
    settings: Any, factory: Any, setting: str, service: str
) -> None:
    # Given an endpoint URL for this service (e.g. Recsite's own compatible endpoint)
    setattr(settings, setting, "http://localhost:8000/personalize")

    # When its client is built
    client = factory()

    # Then it talks to that endpoint, in the configured region, as the right service
    assert client.meta.endpoint_url == "http://localhost:8000/personalize"
    assert client.meta.region_name == "us-east-1"
    assert client.meta.service_model.service_name == service


def test_without_endpoint_url_the_client_uses_the_aws_endpoint_of_the_region(settings: Any) -> None:
    # Given no endpoint URL and region eu-west-1
    settings.AWS_REGION = "eu-west-1"

    # When the runtime client is built, then it points at AWS in that region
    client = aws.personalize_runtime_client()
    assert client.meta.endpoint_url == "https://personalize-runtime.eu-west-1.amazonaws.com"


def test_clients_use_standard_retries_and_timeouts() -> None:
    # Given / When the personalize client is built
    config = aws.personalize_client().meta.config

    # Then it retries in standard mode and has bounded connect and read timeouts
    assert config.retries["mode"] == "standard"
    assert config.retries["total_max_attempts"] == aws.MAX_ATTEMPTS
    assert config.connect_timeout == aws.CONNECT_TIMEOUT_SECONDS
    assert config.read_timeout == aws.READ_TIMEOUT_SECONDS


def test_clients_are_cached_per_service_region_and_endpoint(settings: Any) -> None:
    # Given a client already built
    first = aws.personalize_client()

    # When it is asked for again, then it is the same object; other services get their own
    assert aws.personalize_client() is first
    assert aws.personalize_runtime_client() is not first

    # When the region changes, then a new client is built for it
    settings.AWS_REGION = "eu-west-1"
    assert aws.personalize_client() is not first
    assert aws.personalize_client().meta.region_name == "eu-west-1"

    # When the cache is cleared, then the next client is new
    settings.AWS_REGION = "us-east-1"
    aws.clear_client_cache()
    assert aws.personalize_client() is not first


def test_malformed_endpoint_url_names_its_setting(settings: Any) -> None:
    # Given an endpoint URL that is not a URL
    settings.PERSONALIZE_EVENTS_ENDPOINT_URL = "not a url"

    # When the events client is built, then the error names the setting
    with pytest.raises(PersonalizeConfigError) as caught:
        aws.personalize_events_client()
    assert caught.value.setting == "PERSONALIZE_EVENTS_ENDPOINT_URL"


# --- S3 server-side encryption --------------------------------------------------------------------------


def test_sse_is_aes256_without_a_kms_key() -> None:
    # Given no PERSONALIZE_KMS_KEY_ARN (fixture), when the S3 arguments are asked for, then SSE-S3
    assert aws.s3_server_side_encryption() == {"ServerSideEncryption": "AES256"}


def test_sse_is_kms_with_the_configured_key(settings: Any) -> None:
    # Given a KMS key
    settings.PERSONALIZE_KMS_KEY_ARN = KMS_KEY_ARN

    # When the S3 arguments are asked for, then SSE-KMS with that key
    assert aws.s3_server_side_encryption() == {"ServerSideEncryption": "aws:kms", "SSEKMSKeyId": KMS_KEY_ARN}


@pytest.mark.parametrize("kms_key", ["", KMS_KEY_ARN], ids=["aes256", "kms"])
def test_sse_arguments_fit_put_object(settings: Any, kms_key: str) -> None:
    # Given either encryption setting and a stubbed S3 PutObject expecting its arguments
    settings.PERSONALIZE_KMS_KEY_ARN = kms_key
    extra = aws.s3_server_side_encryption()
    client = aws.s3_client()
    params = {"Bucket": "recsite-data", "Key": "default/interactions.csv", "Body": b"USER_ID\n", **extra}
    with Stubber(client) as stubber:
        stubber.add_response("put_object", {"ETag": '"abc"'}, params)

        # When the export writes a file with them, then S3's model accepts the request
        response = aws.aws_call(client, "put_object", **params)
        assert response["ETag"] == '"abc"'
        stubber.assert_no_pending_responses()
