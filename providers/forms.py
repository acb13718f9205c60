"""The provider account forms, built from what each client declares (`credential_fields`,
`credential_help`, `setting_fields`): a new provider's fields appear without a change here.

Adding an account takes two steps, as Django's user admin asks for the password on a page
of its own: first the provider (`ProviderChoiceForm`), then that provider's form
(`account_form(kind)`), which shows only its credentials and its settings, each a field of
its own (never JSON). A credential of another provider posted anyway is refused.

Credentials are write-only: blank keeps what is stored, nothing is ever shown back, not
even after a form error: the form then asks for each typed one again, next to its field.
"""

from __future__ import annotations

from django import forms
from django.utils.text import get_text_list

from giftdesk.text import plural, verb
from providers.clients import client_class
from providers.clients.base import ProviderClient, SettingField
from providers.models import ProviderAccount, ProviderKind, default_rate_per_minute
from providers.services import (
    MONTHLY_LIMITS_EXAMPLE,
    AccountConfigError,
    account_save,
    credential_keys,
    credential_labels,
    monthly_limits_parse,
    monthly_limits_text,
)

CREDENTIAL_STORAGE = "Stored encrypted and never shown again; on a saved account, blank keeps the stored value."
WEBHOOK_SECRET_HELP = "The secret that verifies the webhooks the provider sends (only if it sends any)."
# The model's default, used where a provider documents no tighter limit.
MAX_CARDS_DEFAULT = ProviderAccount._meta.get_field("max_cards_per_request").default
TYPE_AGAIN = "Enter the {label} again: credentials are never sent back to the browser."


def credential_field_name(key: str) -> str:
    return f"credential_{key}"


def setting_field_name(key: str) -> str:
    return f"setting_{key}"


def kind_credentials(kind: str) -> list[str]:
    """The credentials `kind` takes, its own in the order it declares them, then the common ones."""
    accepted = credential_keys(kind)
    return [key for key in dict.fromkeys([*client_class(kind).credential_fields, *sorted(accepted)])
            if key in accepted]


def kind_credential_labels(kind: str) -> dict[str, str]:
    """The credentials `kind` takes (`kind_credentials`), each with its label as the kind's documents name it."""
    labels = {**credential_labels(), **client_class(kind).credential_fields}
    return {key: labels.get(key, key) for key in kind_credentials(kind)}


def provider_choices() -> list[tuple[str, str]]:
    """Each provider with what it asks for: "GoGift: Client ID and Client secret"."""
    return [(kind, f"{label}: {get_text_list(list(client_class(kind).credential_fields.values()), 'and')}")
            for kind, label in ProviderKind.choices]


def _credential_field(label: str, help_text: str) -> forms.CharField:
    return forms.CharField(
        label=label, required=False, strip=True,
        widget=forms.PasswordInput(render_value=False, attrs={"autocomplete": "new-password"}),
        help_text=f"{help_text} {CREDENTIAL_STORAGE}".strip(),
    )


def _setting_field(declared: SettingField) -> forms.CharField:
    notes = [declared.help_text] if declared.help_text else []
    if declared.default:
        notes.append(f"Blank: {declared.default}.")
    if declared.required:
        notes.append("Needed before sending (see the pre-launch checklist).")
    return forms.CharField(label=declared.label, required=False, strip=True, help_text=" ".join(notes))


def _endpoint_fields(client: type[ProviderClient]) -> dict[str, forms.Field]:
    """The API and token URL fields, saying which URLs a blank one means for this provider."""
    name = client.display_name

    def blank_means(position: int, fallback: str) -> str:
        urls = {environment: pair[position] for environment, pair in client.documented_urls.items() if pair[position]}
        if not urls:
            return fallback
        if len(set(urls.values())) == 1:
            return f"Blank: {next(iter(urls.values()))}."
        return "Blank: " + ", ".join(f"{url} in {environment}" for environment, url in urls.items()) + "."

    return {
        "api_base_url": forms.URLField(
            assume_scheme="https", required=False, label="API base URL",
            help_text=f"As {name} documents it. {blank_means(0, 'Blank: the documented URL for this environment.')}",
        ),
        "auth_url": forms.URLField(
            assume_scheme="https", required=False, label="Token URL",
            help_text=f"Where {name} hands out access tokens for the client credentials. "
                      f"{blank_means(1, f'Blank: the token URL {name} documents.')}",
        ),
    }


def _sending_fields(kind: str, client: type[ProviderClient]) -> dict[str, forms.Field]:
    """How much to send at once, defaulting to what the provider documents."""
    name = client.display_name
    cards = min(MAX_CARDS_DEFAULT, client.max_cards_per_submission or MAX_CARDS_DEFAULT)
    rate = default_rate_per_minute(kind)  # the documented limit, as an account created elsewhere gets
    cap = (f" {name} takes at most {plural(client.max_cards_per_submission, 'card')} per request."
           if client.max_cards_per_submission else "")
    documented = f" {name} allows {client.max_requests_per_minute} a minute." if client.max_requests_per_minute else ""
    return {
        "max_cards_per_request": forms.IntegerField(
            label="Max cards per request", required=False, min_value=1, initial=cards,
            help_text=f"Most cards one request to {name} carries.{cap} Blank: {cards}."),
        "rate_limit_per_minute": forms.IntegerField(
            label="Rate limit per minute", required=False, min_value=1, initial=rate,
            help_text=f"Requests a minute to {name}, all workers together, spread evenly over the minute."
                      f"{documented} Blank: {rate}."),
    }


class ProviderChoiceForm(forms.ModelForm):
    """The first step of adding an account: which provider. Nothing is saved from it."""

    kind = forms.ChoiceField(
        label="Provider", choices=provider_choices, widget=forms.RadioSelect(attrs={"class": "radiolist"}),
        help_text="The next page asks for this provider's credentials and settings, as its documents name them.",
    )

    class Meta:
        model = ProviderAccount
        fields = ["kind"]


class ProviderAccountForm(forms.ModelForm):
    """The fields every account has; `account_form` adds the kind's own."""

    # `account_form` replaces these with the provider's documented URLs in their help.
    api_base_url = forms.URLField(assume_scheme="https", required=False, label="API base URL")
    auth_url = forms.URLField(assume_scheme="https", required=False, label="Token URL")

    # Stored as {currency: "amount"} (ProviderAccount.monthly_limits); typed as text.
    monthly_limits = forms.CharField(
        label="Monthly spending limits", required=False, strip=True,
        help_text=(
            f"Per currency and calendar month, e.g. “{MONTHLY_LIMITS_EXAMPLE}”. Cards being sent, being "
            "fulfilled or delivered this month count; orders that would go over wait, saying why, until "
            "the limit is raised or the next month begins. Blank: no limit."
        ),
    )

    # Set by `account_form`: the provider this form is for, and the settings it shows.
    provider_kind: str = ""
    setting_keys: tuple[str, ...] = ()

    class Meta:
        model = ProviderAccount
        # The kind is chosen before this form (or fixed, on a saved account): not a field.
        fields = ["name", "environment", "api_base_url", "auth_url",
                  "max_cards_per_request", "rate_limit_per_minute", "monthly_limits", "is_active"]

    def __init__(self, *args, **kwargs) -> None:
        super().__init__(*args, **kwargs)
        if self.provider_kind and not self.instance.pk:
            self.instance.kind = self.provider_kind
        self.initial["monthly_limits"] = monthly_limits_text(self.instance.monthly_limits)
        stored = self.instance.settings or {}
        for key in self.setting_keys:
            if stored.get(key) is not None:
                self.initial.setdefault(setting_field_name(key), str(stored[key]))

    def clean_monthly_limits(self) -> dict[str, str]:
        try:
            return monthly_limits_parse(self.cleaned_data.get("monthly_limits", ""))
        except AccountConfigError as exc:
            raise forms.ValidationError(str(exc)) from None

    def clean_max_cards_per_request(self) -> int:
        return self._or_default("max_cards_per_request")

    def clean_rate_limit_per_minute(self) -> int:
        return self._or_default("rate_limit_per_minute")

    def _or_default(self, name: str) -> int:
        value = self.cleaned_data.get(name)
        return self.fields[name].initial if value is None else value

    def clean(self):
        cleaned = super().clean()
        kind = self.provider_kind or self.instance.kind
        if kind:
            # Another provider's credential has no field here, so it can only come from a
            # forged or stale post: refuse it rather than drop it silently.
            labels = credential_labels()
            foreign = [labels[key] for key in labels
                       if key not in credential_keys(kind) and self._typed(credential_field_name(key))]
            if foreign:
                name = client_class(kind).display_name
                raise forms.ValidationError(
                    f"{get_text_list(foreign, 'and')} {verb(len(foreign), 'does', 'do')} not apply to {name} "
                    f"accounts; {name} uses {get_text_list(list(kind_credential_labels(kind).values()), 'and')}."
                )
        return cleaned

    def full_clean(self) -> None:
        super().full_clean()
        if self.is_bound and self._errors:
            # A password field comes back empty after any error (a credential is never sent
            # back): say so next to each one typed, or saving again would store none.
            for name, field in self.fields.items():
                if name.startswith(credential_field_name("")) and name not in self._errors and self._typed(name):
                    self.add_error(name, TYPE_AGAIN.format(label=field.label))

    def _typed(self, name: str) -> bool:
        return bool(str(self.data.get(self.add_prefix(name)) or "").strip())

    def save(self, commit=True):
        """The account with this form's fields and settings. Credentials are applied by
        `services.account_save` (with commit, or by the admin's `save_model`), which also
        clears stored ones when the API or token URL changed; its notices are `self.notices`."""
        account = super().save(commit=False)
        account.settings = self._settings(account.settings)
        self.notices: list[str] = []
        if commit:
            self.notices = account_save(account=account, credentials=self.entered_credentials(account.kind))
        return account

    def entered_credentials(self, kind: str) -> dict[str, str]:
        """The credentials typed into this form (blank fields keep what is stored)."""
        return {
            key: self.cleaned_data[credential_field_name(key)]
            for key in credential_keys(kind) if self.cleaned_data.get(credential_field_name(key))
        }

    def _settings(self, stored: dict) -> dict:
        """The stored settings with this form's fields applied: a blank field removes its key
        (the client then uses its default); keys this form does not show stay as they are."""
        settings = dict(stored or {})
        for key in self.setting_keys:
            value = self.cleaned_data.get(setting_field_name(key))
            if value:
                settings[key] = value
            else:
                settings.pop(key, None)
        return settings


def account_form(kind: str | None) -> type[forms.ModelForm]:
    """The form of one provider's accounts: its credential fields (labelled and explained as
    its documents do), its setting fields, its URLs and sending defaults. Without a kind,
    the first step of adding an account: `ProviderChoiceForm`. Built as a class because the
    admin's fieldsets may only name fields a form class declares."""
    if kind is None:
        return ProviderChoiceForm
    client = client_class(kind)
    helps = {"webhook_secret": WEBHOOK_SECRET_HELP, **client.credential_help}
    fields: dict[str, forms.Field] = {
        credential_field_name(key): _credential_field(label, helps.get(key, ""))
        for key, label in kind_credential_labels(kind).items()
    }
    fields |= {setting_field_name(key): _setting_field(setting) for key, setting in client.setting_fields.items()}
    fields |= _endpoint_fields(client) | _sending_fields(kind, client)
    # type() takes the base's metaclass: Django's ModelFormMetaclass gathers the fields.
    return type("ProviderAccountForm", (ProviderAccountForm,), {
        **fields, "provider_kind": kind, "setting_keys": tuple(client.setting_fields), "__module__": __name__})
