"""The catalog admin: schema-typed metadata forms, categorical filters, read-only events, imports."""

import json
from typing import Any

import pytest
from django.core.files.uploadedfile import SimpleUploadedFile
from django.db import connection
from django.test import Client
from django.test.utils import CaptureQueriesContext
from django.urls import reverse

from catalog.models import (
    DatasetGroup,
    DatasetImportJob,
    DatasetSchema,
    Interaction,
    Item,
    JobStatus,
)
from catalog.schemas import DatasetType, FieldKind, FieldSpec, fields_to_json
from catalog.services import dataset_schema_save
from tests.factories import DatasetGroupFactory, EndUserFactory, InteractionFactory, ItemFactory

ITEM_FIELDS = [
    FieldSpec("ITEM_ID", FieldKind.ID, "string", nullable=False),
    FieldSpec("GENRES", FieldKind.CATEGORICAL, "string", nullable=True),
    FieldSpec("RELEASE_YEAR", FieldKind.NUMERICAL, "int", nullable=True),
    FieldSpec("PRICE", FieldKind.NUMERICAL, "double", nullable=True),
    FieldSpec("ON_SALE", FieldKind.BOOLEAN, "boolean", nullable=True),
    FieldSpec("DESCRIPTION", FieldKind.TEXTUAL, "string", nullable=True),
]
USER_FIELDS = [
    FieldSpec("USER_ID", FieldKind.ID, "string", nullable=False),
    FieldSpec("AGE", FieldKind.NUMERICAL, "int", nullable=False),
    FieldSpec("MEMBERSHIP", FieldKind.CATEGORICAL, "string", nullable=True),
]


@pytest.fixture(autouse=True)
def _fast_password_hashing(settings: Any) -> None:
    """The admin login is created per test; a cheap hasher keeps that from dominating the run."""
    settings.PASSWORD_HASHERS = ["django.contrib.auth.hashers.MD5PasswordHasher"]


@pytest.fixture
def items_schema(default_group: DatasetGroup) -> DatasetSchema:
    """The default group's items schema: categorical, int, double, boolean and textual fields."""
    return dataset_schema_save(
        dataset_group=default_group, dataset_type=DatasetType.ITEMS, fields=ITEM_FIELDS
    )


@pytest.fixture
def users_schema(default_group: DatasetGroup) -> DatasetSchema:
    """The default group's users schema with a required AGE."""
    return dataset_schema_save(
        dataset_group=default_group, dataset_type=DatasetType.USERS, fields=USER_FIELDS
    )


def _form(response: Any) -> Any:
    return response.context["adminform"].form


def _item_post(item: Item, **metadata: str) -> dict[str, str]:
    data = {
        "creation_timestamp_0": "",
        "creation_timestamp_1": "",
        "metadata__GENRES": "",
        "metadata__RELEASE_YEAR": "",
        "metadata__PRICE": "",
        "metadata__ON_SALE": "",
        "metadata__DESCRIPTION": "",
    }
    data.update({f"metadata__{name}": value for name, value in metadata.items()})
    return data


# ---- items: changelist -----------------------------------------------------------------------


def test_item_changelist_filters_by_one_value_of_a_categorical_multi_value(
    admin_client: Client, items_schema: DatasetSchema
) -> None:
    # given items whose GENRES hold Comedy alone, inside a multi-value, in a longer word, or in another case
    ItemFactory(item_id="toy-story", metadata={"GENRES": "Animation|Comedy"})
    ItemFactory(item_id="airplane", metadata={"GENRES": "Comedy"})
    ItemFactory(item_id="mash", metadata={"GENRES": "War|Comedy|Drama"})
    ItemFactory(item_id="dark", metadata={"GENRES": "Dark Comedy"})
    ItemFactory(item_id="lower", metadata={"GENRES": "comedy"})
    ItemFactory(item_id="plain", metadata={})
    url = reverse("admin:catalog_item_changelist")
    # when the changelist is shown unfiltered
    response = admin_client.get(url)
    # then the GENRES filter offers each single value, split at |
    assert response.status_code == 200
    spec = next(spec for spec in response.context["cl"].filter_specs if spec.title == "GENRES")
    assert [value for value, _ in spec.lookup_choices] == [
        "Animation",
        "Comedy",
        "Dark Comedy",
        "Drama",
        "War",
        "comedy",
    ]
    # when filtered by Comedy
    response = admin_client.get(url, {"metadata_GENRES": "Comedy"})
    # then exactly the items holding the value Comedy are listed
    shown = {item.item_id for item in response.context["cl"].result_list}
    assert shown == {"toy-story", "airplane", "mash"}


def test_item_changelist_filter_follows_the_selected_group_schema(
    admin_client: Client, items_schema: DatasetSchema
) -> None:
    # given a second group whose items schema has a categorical BRAND and no GENRES
    shop = DatasetGroupFactory(name="shop")
    dataset_schema_save(
        dataset_group=shop,
        dataset_type=DatasetType.ITEMS,
        fields=[ITEM_FIELDS[0], FieldSpec("BRAND", FieldKind.CATEGORICAL)],
    )
    ItemFactory(dataset_group=shop, item_id="kettle", metadata={"BRAND": "acme"})
    ItemFactory(item_id="heat", metadata={"GENRES": "Crime"})
    url = reverse("admin:catalog_item_changelist")
    # when the list is filtered to that group
    response = admin_client.get(url, {"dataset_group__id__exact": shop.pk})
    # then only that group's categorical fields are offered as filters
    titles = {spec.title for spec in response.context["cl"].filter_specs}
    assert "BRAND" in titles
    assert "GENRES" not in titles
    # and without the group filter, both groups' fields are offered
    titles = {spec.title for spec in admin_client.get(url).context["cl"].filter_specs}
    assert {"BRAND", "GENRES"} <= titles


def test_item_changelist_searches_ids_and_does_not_query_per_row(
    admin_client: Client, items_schema: DatasetSchema
) -> None:
    # given a few items with interactions
    for index in range(3):
        InteractionFactory(item=ItemFactory(item_id=f"few-{index}", metadata={"GENRES": "Drama"}))
    url = reverse("admin:catalog_item_changelist")
    with CaptureQueriesContext(connection) as few:
        assert admin_client.get(url).status_code == 200
    # when many more items are listed
    for index in range(25):
        InteractionFactory(item=ItemFactory(item_id=f"many-{index}", metadata={"GENRES": "Drama"}))
    with CaptureQueriesContext(connection) as many:
        response = admin_client.get(url)
    # then the number of queries does not grow with the rows shown
    assert response.status_code == 200
    assert len(many) == len(few)
    # and the interaction count and metadata summary are shown
    assert b"GENRES=Drama" in response.content
    first = next(item for item in response.context["cl"].result_list if item.item_id == "many-0")
    assert first.interaction_count == 1
    # when searching by part of an id
    response = admin_client.get(url, {"q": "many-1"})
    # then only matching items are listed
    shown = {item.item_id for item in response.context["cl"].result_list}
    assert shown == {"many-1", *(f"many-{index}" for index in range(10, 20))}


# ---- items: typed metadata forms -------------------------------------------------------------


def test_item_change_form_shows_schema_typed_fields(
    admin_client: Client, items_schema: DatasetSchema
) -> None:
    # given an item with stored metadata
    item = ItemFactory(metadata={"GENRES": "Animation|Comedy", "RELEASE_YEAR": 1995, "ON_SALE": True})
    # when its change form is opened
    response = admin_client.get(reverse("admin:catalog_item_change", args=[item.pk]))
    # then each metadata field has the form field its kind calls for, prefilled
    assert response.status_code == 200
    form = _form(response)
    assert type(form.fields["metadata__GENRES"]).__name__ == "CharField"
    assert "|" in form.fields["metadata__GENRES"].help_text
    assert type(form.fields["metadata__RELEASE_YEAR"]).__name__ == "IntegerField"
    assert type(form.fields["metadata__PRICE"]).__name__ == "FloatField"
    assert type(form.fields["metadata__DESCRIPTION"].widget).__name__ == "Textarea"
    assert type(form.fields["metadata__ON_SALE"]).__name__ == "TypedChoiceField"
    assert form.initial["metadata__GENRES"] == "Animation|Comedy"
    assert form.initial["metadata__RELEASE_YEAR"] == 1995
    assert form.initial["metadata__ON_SALE"] == "true"
    content = response.content.decode()
    assert 'name="metadata__RELEASE_YEAR"' in content
    assert 'type="number"' in content
    assert "<textarea" in content
    # and the id is the record's identity: not editable on change
    assert "item_id" not in form.fields


def test_item_change_refuses_a_bad_number_on_that_field(
    admin_client: Client, items_schema: DatasetSchema
) -> None:
    # given an item
    item = ItemFactory(metadata={"RELEASE_YEAR": 1995})
    # when a word is posted as its integer year
    response = admin_client.post(
        reverse("admin:catalog_item_change", args=[item.pk]), _item_post(item, RELEASE_YEAR="nineteen")
    )
    # then the form is shown again with the error on RELEASE_YEAR only, and nothing is saved
    assert response.status_code == 200
    errors = _form(response).errors
    assert set(errors) == {"metadata__RELEASE_YEAR"}
    assert "whole number" in errors["metadata__RELEASE_YEAR"][0]
    item.refresh_from_db()
    assert item.metadata == {"RELEASE_YEAR": 1995}


def test_item_change_refuses_what_an_import_refuses_on_that_field(
    admin_client: Client, items_schema: DatasetSchema
) -> None:
    # given an item
    item = ItemFactory(metadata={})
    # when a categorical value longer than Personalize's 1000-character limit is posted
    response = admin_client.post(
        reverse("admin:catalog_item_change", args=[item.pk]), _item_post(item, GENRES="Drama|" + "x" * 1001)
    )
    # then the import's message is shown on GENRES
    assert response.status_code == 200
    errors = _form(response).errors
    assert list(errors) == ["metadata__GENRES"]
    assert "limit is 1000" in errors["metadata__GENRES"][0]


def test_item_change_saves_metadata_typed(admin_client: Client, items_schema: DatasetSchema) -> None:
    # given an imported item with an old description
    item = ItemFactory(metadata={"DESCRIPTION": "old text", "GENRES": "Drama"})
    # when typed values are posted and the description is emptied
    response = admin_client.post(
        reverse("admin:catalog_item_change", args=[item.pk]),
        _item_post(item, GENRES="Animation|Comedy", RELEASE_YEAR="1995", PRICE="9.5", ON_SALE="false"),
    )
    # then the metadata is stored typed, the empty nullable field is dropped, and it counts as a put
    assert response.status_code == 302
    item.refresh_from_db()
    assert item.metadata == {
        "GENRES": "Animation|Comedy",
        "RELEASE_YEAR": 1995,
        "PRICE": 9.5,
        "ON_SALE": False,
    }
    assert type(item.metadata["RELEASE_YEAR"]) is int
    assert item.source == "put"


def test_item_add_uses_the_default_group_unless_another_is_named(
    admin_client: Client, items_schema: DatasetSchema
) -> None:
    # given a second group with its own items schema
    shop = DatasetGroupFactory(name="shop")
    dataset_schema_save(
        dataset_group=shop,
        dataset_type=DatasetType.ITEMS,
        fields=[ITEM_FIELDS[0], FieldSpec("WEIGHT", FieldKind.NUMERICAL, "float", nullable=False)],
    )
    url = reverse("admin:catalog_item_add")
    # when the add form is opened without a group
    form = _form(admin_client.get(url))
    # then it has the default group's fields
    assert "metadata__GENRES" in form.fields
    assert "metadata__WEIGHT" not in form.fields
    # when it is opened for the shop group
    response = admin_client.get(url, {"dataset_group": "shop"})
    form = _form(response)
    # then it has the shop schema's fields, a non-nullable field being required
    assert set(form.fields) == {"item_id", "creation_timestamp", "metadata__WEIGHT"}
    assert form.fields["metadata__WEIGHT"].required is True
    # when an item is posted to it
    response = admin_client.post(
        f"{url}?dataset_group=shop",
        {
            "item_id": "kettle",
            "creation_timestamp_0": "",
            "creation_timestamp_1": "",
            "metadata__WEIGHT": "1.25",
        },
    )
    # then it is created in the shop group with typed metadata
    assert response.status_code == 302
    kettle = Item.objects.get(item_id="kettle")
    assert kettle.dataset_group == shop
    assert kettle.metadata == {"WEIGHT": 1.25}


def test_item_add_refuses_an_id_taken_in_the_group_and_a_missing_required_field(
    admin_client: Client, items_schema: DatasetSchema
) -> None:
    # given an existing item in the default group
    ItemFactory(item_id="toy-story")
    url = reverse("admin:catalog_item_add")
    # when the same id is added again
    response = admin_client.post(
        url, {"item_id": "toy-story", "creation_timestamp_0": "", "creation_timestamp_1": ""}
    )
    # then the error is on the id and no second item exists
    assert response.status_code == 200
    assert "already exists in group default" in _form(response).errors["item_id"][0]
    assert Item.objects.filter(item_id="toy-story").count() == 1


def test_item_add_for_an_unknown_group_goes_back_with_a_message(
    admin_client: Client, default_group: Any
) -> None:
    # when the add form is asked for a group that does not exist
    response = admin_client.get(reverse("admin:catalog_item_add"), {"dataset_group": "nope"}, follow=True)
    # then the operator lands on the list with the reason
    assert response.redirect_chain[-1][0] == reverse("admin:catalog_item_changelist")
    assert "dataset group &#x27;nope&#x27; does not exist" in response.content.decode()


def test_item_form_without_a_schema_refuses_to_save(
    admin_client: Client, default_group: DatasetGroup
) -> None:
    # given a group with no items schema yet
    url = reverse("admin:catalog_item_add")
    # when an item is added
    response = admin_client.post(
        url, {"item_id": "x", "creation_timestamp_0": "", "creation_timestamp_1": ""}
    )
    # then the form says the schema is missing
    assert response.status_code == 200
    assert "has no schema yet" in " ".join(_form(response).non_field_errors())
    assert not Item.objects.exists()


# ---- end users --------------------------------------------------------------------------------


def test_end_user_form_requires_non_nullable_fields_and_saves_typed(
    admin_client: Client, users_schema: DatasetSchema
) -> None:
    # given an end user
    user = EndUserFactory(user_id="u1", metadata={"AGE": 30})
    url = reverse("admin:catalog_enduser_change", args=[user.pk])
    # when the required AGE is emptied
    response = admin_client.post(url, {"metadata__AGE": "", "metadata__MEMBERSHIP": "gold"})
    # then it is refused on AGE
    assert response.status_code == 200
    assert list(_form(response).errors) == ["metadata__AGE"]
    # when valid values are posted
    response = admin_client.post(url, {"metadata__AGE": "41", "metadata__MEMBERSHIP": "gold|prime"})
    # then they are stored typed
    assert response.status_code == 302
    user.refresh_from_db()
    assert user.metadata == {"AGE": 41, "MEMBERSHIP": "gold|prime"}


def test_end_user_changelist_filters_by_categorical_field(
    admin_client: Client, users_schema: DatasetSchema
) -> None:
    # given users with memberships
    EndUserFactory(user_id="a", metadata={"AGE": 1, "MEMBERSHIP": "gold|prime"})
    EndUserFactory(user_id="b", metadata={"AGE": 2, "MEMBERSHIP": "silver"})
    # when filtered by one membership value
    response = admin_client.get(reverse("admin:catalog_enduser_changelist"), {"metadata_MEMBERSHIP": "prime"})
    # then only the users holding it are listed
    assert response.status_code == 200
    assert [user.user_id for user in response.context["cl"].result_list] == ["a"]


# ---- interactions -----------------------------------------------------------------------------


def test_interactions_are_view_only(admin_client: Client, default_group: DatasetGroup) -> None:
    # given an interaction
    event = InteractionFactory(event_type="click")
    change_url = reverse("admin:catalog_interaction_change", args=[event.pk])
    # when an operator tries to add, change or delete one
    add = admin_client.get(reverse("admin:catalog_interaction_add"))
    change = admin_client.post(change_url, {"event_type": "purchase"})
    delete = admin_client.post(reverse("admin:catalog_interaction_delete", args=[event.pk]), {"post": "yes"})
    view = admin_client.get(change_url)
    # then each write is forbidden, and the event can still be viewed unchanged
    assert (add.status_code, delete.status_code) == (403, 403)
    assert change.status_code == 403
    assert view.status_code == 200
    assert b'name="_save"' not in view.content
    event.refresh_from_db()
    assert event.event_type == "click"
    assert Interaction.objects.count() == 1


def test_interaction_changelist_searches_filters_and_has_a_date_hierarchy(
    admin_client: Client, default_group: DatasetGroup
) -> None:
    # given clicks and purchases of two users, one anonymous event
    alice = EndUserFactory(user_id="alice")
    bob = EndUserFactory(user_id="bob")
    InteractionFactory(user=alice, event_type="click")
    InteractionFactory(user=alice, event_type="purchase")
    InteractionFactory(user=bob, event_type="click")
    InteractionFactory(user=None, session_id="s-1", event_type="click")
    url = reverse("admin:catalog_interaction_changelist")
    # when searching by user id, by session id, and filtering by event type
    by_user = admin_client.get(url, {"q": "alice"})
    by_session = admin_client.get(url, {"q": "s-1"})
    by_type = admin_client.get(url, {"event_type": "purchase"})
    # then each lists the matching events
    assert {e.event_type for e in by_user.context["cl"].result_list} == {"click", "purchase"}
    assert [e.session_id for e in by_session.context["cl"].result_list] == ["s-1"]
    assert [e.user for e in by_type.context["cl"].result_list] == [alice]
    assert b"session s-1" in admin_client.get(url).content
    # and the list is browsable by date
    assert by_user.context["cl"].date_hierarchy == "timestamp"


def test_interaction_changelist_does_not_query_per_row(
    admin_client: Client, default_group: DatasetGroup
) -> None:
    # given a few events
    InteractionFactory.create_batch(3)
    url = reverse("admin:catalog_interaction_changelist")
    with CaptureQueriesContext(connection) as few:
        admin_client.get(url)
    # when there are many more
    InteractionFactory.create_batch(30)
    with CaptureQueriesContext(connection) as many:
        response = admin_client.get(url)
    # then the query count stays the same
    assert response.status_code == 200
    assert len(many) == len(few)


# ---- dataset schemas and groups ---------------------------------------------------------------


def _schema_url(schema: DatasetSchema) -> str:
    return reverse("admin:catalog_datasetschema_change", args=[schema.pk])


def test_schema_editing_refuses_an_invalid_schema_with_personalize_messages(
    admin_client: Client, items_schema: DatasetSchema
) -> None:
    # given the items schema; when its ITEM_ID field is dropped
    without_id = json.dumps(fields_to_json(ITEM_FIELDS[1:]))
    response = admin_client.post(_schema_url(items_schema), {"fields": without_id})
    # then the form says what Personalize would say, on the field list
    assert response.status_code == 200
    assert "needs the field(s) ITEM_ID" in _form(response).errors["fields"][0]
    # when broken JSON, an unknown kind, or a mistyped field is posted
    broken = admin_client.post(_schema_url(items_schema), {"fields": '[{"name": "ITEM_ID",'})
    unknown_kind = json.dumps([*fields_to_json(ITEM_FIELDS[:1]), {"name": "X", "kind": "colour"}])
    bad_kind = admin_client.post(_schema_url(items_schema), {"fields": unknown_kind})
    numeric_string = [
        *fields_to_json(ITEM_FIELDS[:1]),
        {"name": "X", "kind": "numerical", "avro_type": "string"},
    ]
    bad_type = admin_client.post(_schema_url(items_schema), {"fields": json.dumps(numeric_string)})
    # then each is refused with a message that locates the problem
    assert "Invalid JSON at line 1" in _form(broken).errors["fields"][0]
    assert "field X: kind 'colour' is not one of" in _form(bad_kind).errors["fields"][0]
    assert "cannot have Avro type string" in _form(bad_type).errors["fields"][0]
    # and the stored schema is unchanged
    items_schema.refresh_from_db()
    assert items_schema.field_specs == ITEM_FIELDS


def test_schema_editing_saves_a_valid_field_list_and_shows_the_avro_json(
    admin_client: Client, items_schema: DatasetSchema
) -> None:
    # given the schema's change page shows the field list as JSON and the Avro schema
    page = admin_client.get(_schema_url(items_schema)).content.decode()
    assert "&quot;RELEASE_YEAR&quot;" in page
    assert "com.amazonaws.personalize.schema" in page
    # when a categorical BRAND field is appended
    fields = [*fields_to_json(ITEM_FIELDS), {"name": "BRAND", "kind": "categorical"}]
    response = admin_client.post(_schema_url(items_schema), {"fields": json.dumps(fields)})
    # then the schema has it, and the item form offers it
    assert response.status_code == 302
    items_schema.refresh_from_db()
    assert items_schema.field_specs[-1] == FieldSpec("BRAND", FieldKind.CATEGORICAL, "string", True)
    item = ItemFactory()
    assert (
        "metadata__BRAND"
        in _form(admin_client.get(reverse("admin:catalog_item_change", args=[item.pk]))).fields
    )


def test_schema_add_refuses_a_second_schema_for_the_same_dataset(
    admin_client: Client, items_schema: DatasetSchema, default_group: DatasetGroup
) -> None:
    # when a users schema and then a second items schema are added for the default group
    users = json.dumps(fields_to_json(USER_FIELDS))
    url = reverse("admin:catalog_datasetschema_add")
    created = admin_client.post(
        url, {"dataset_group": default_group.pk, "dataset_type": "users", "fields": users}
    )
    items = json.dumps(fields_to_json(ITEM_FIELDS))
    again = admin_client.post(
        url, {"dataset_group": default_group.pk, "dataset_type": "items", "fields": items}
    )
    # then the users schema exists and the duplicate is refused
    assert created.status_code == 302
    assert DatasetSchema.objects.get(dataset_type="users").field_specs == USER_FIELDS
    assert again.status_code == 200
    assert _form(again).non_field_errors()
    assert DatasetSchema.objects.filter(dataset_type="items").count() == 1


def test_dataset_group_list_shows_counts_and_default_cannot_be_deleted(
    admin_client: Client, default_group: DatasetGroup
) -> None:
    # given two items, one user and three interactions in the default group, and an empty group
    user = EndUserFactory()
    InteractionFactory.create_batch(2, user=user)
    InteractionFactory(user=user, item=Item.objects.first())
    empty = DatasetGroupFactory(name="empty")
    # when the group list is shown
    response = admin_client.get(reverse("admin:catalog_datasetgroup_changelist"))
    # then each group shows its counts
    rows = {group.name: group for group in response.context["cl"].result_list}
    default = rows["default"]
    assert (default.item_count, default.end_user_count, default.interaction_count) == (2, 1, 3)
    assert (rows["empty"].item_count, rows["empty"].interaction_count) == (0, 0)
    # and default cannot be deleted while another group can
    assert (
        admin_client.get(reverse("admin:catalog_datasetgroup_delete", args=[default_group.pk])).status_code
        == 403
    )
    assert admin_client.get(reverse("admin:catalog_datasetgroup_delete", args=[empty.pk])).status_code == 200


# ---- import jobs ------------------------------------------------------------------------------


@pytest.fixture
def media_root(settings: Any, tmp_path: Any) -> Any:
    """Uploaded CSVs go to a temporary media root."""
    settings.MEDIA_ROOT = tmp_path
    return tmp_path


def test_import_page_creates_a_job_that_imports_the_files(
    admin_client: Client,
    default_group: DatasetGroup,
    media_root: Any,
    django_capture_on_commit_callbacks: Any,
) -> None:
    # given items and interactions CSVs in Personalize's format
    items_csv = SimpleUploadedFile(
        "items.csv", b"ITEM_ID,GENRES,RELEASE_YEAR\n1,Animation|Comedy,1995\n2,Action,\n"
    )
    interactions_csv = SimpleUploadedFile(
        "interactions.csv",
        b"USER_ID,ITEM_ID,TIMESTAMP,EVENT_TYPE\nu1,1,1700000000,click\nu1,2,1700000060,click\n",
    )
    url = reverse("admin:catalog_datasetimportjob_add")
    # the page is titled Import CSV and preselects the default group
    page = admin_client.get(url)
    assert "Import CSV" in page.content.decode()
    assert _form(page).initial["dataset_group"] == default_group.pk
    # when both files are posted and the request's transaction commits
    with django_capture_on_commit_callbacks(execute=True):
        response = admin_client.post(
            url,
            {
                "dataset_group": default_group.pk,
                "mode": "incremental",
                "items_file": items_csv,
                "interactions_file": interactions_csv,
            },
        )
    # then a job exists, the operator is sent to its page, and the import ran
    job = DatasetImportJob.objects.get()
    assert response.status_code == 302
    assert response.url == reverse("admin:catalog_datasetimportjob_change", args=[job.pk])
    assert job.status == JobStatus.ACTIVE, job.failure_reason
    assert Item.objects.get(item_id="1").metadata["RELEASE_YEAR"] == 1995
    assert Interaction.objects.count() == 2
    # and the job page shows its report, read-only
    view = admin_client.get(response.url)
    assert view.status_code == 200
    assert b'name="_save"' not in view.content


def test_import_page_shows_a_failed_job_with_its_reason(
    admin_client: Client,
    default_group: DatasetGroup,
    media_root: Any,
    django_capture_on_commit_callbacks: Any,
) -> None:
    # given an items CSV without the ITEM_ID column
    bad = SimpleUploadedFile("items.csv", b"GENRES\nComedy\n")
    # when it is imported from the admin
    with django_capture_on_commit_callbacks(execute=True):
        admin_client.post(
            reverse("admin:catalog_datasetimportjob_add"),
            {"dataset_group": default_group.pk, "mode": "full", "items_file": bad},
        )
    # then the job failed, and the list and its page show why
    job = DatasetImportJob.objects.get()
    assert job.status == JobStatus.FAILED
    assert job.failure_reason
    listing = admin_client.get(reverse("admin:catalog_datasetimportjob_changelist")).content.decode()
    assert "CREATE FAILED" in listing
    page = admin_client.get(reverse("admin:catalog_datasetimportjob_change", args=[job.pk])).content.decode()
    assert "items.csv" in page


def test_import_page_needs_at_least_one_file(admin_client: Client, default_group: DatasetGroup) -> None:
    # when the form is posted without files
    response = admin_client.post(
        reverse("admin:catalog_datasetimportjob_add"), {"dataset_group": default_group.pk, "mode": "full"}
    )
    # then it is refused and no job is created
    assert response.status_code == 200
    assert "at least one CSV file" in " ".join(_form(response).non_field_errors())
    assert not DatasetImportJob.objects.exists()


def test_admin_index_lists_the_catalog(admin_client: Client, default_group: DatasetGroup) -> None:
    # when the admin index is opened, then every catalog model is reachable
    content = admin_client.get(reverse("admin:index")).content.decode()
    for model in ("datasetgroup", "datasetschema", "item", "enduser", "interaction", "datasetimportjob"):
        assert f"/admin/catalog/{model}/" in content
