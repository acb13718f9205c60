"""The provider account form, built from what each client declares (`credential_fields`,
`setting_fields`): a new provider's fields appear without a change here.

Credentials are write-only: blank keeps what is stored, nothing is ever shown back. A kind's
settings are real fields on the account's change page; the add form, which does not know
the kind yet, asks for the rest first (as Django's own user admin does with passwords).
"""

from __future__ import annotations

from django import forms

from providers.clients import client_class
from providers.clients.base import SettingField
from providers.models import ProviderAccount
from providers.services import (
    MONTHLY_LIMITS_EXAMPLE,
    AccountConfigError,
    account_save,
    credential_keys,
    credential_labels,
    monthly_limits_parse,
    monthly_limits_text,
)


def credential_field_name(key: str) -> str:
    return f"credential_{key}"


def setting_field_name(key: str) -> str:
    return f"setting_{key}"


def _credential_field(label: str) -> forms.CharField:
    return forms.CharField(
        label=label, required=False, strip=True,
        widget=forms.PasswordInput(render_value=False, attrs={"autocomplete": "new-password"}),
        help_text="Stored encrypted. Leave blank to keep the stored value.",
    )


def _setting_field(declared: SettingField) -> forms.CharField:
    notes = [declared.help_text] if declared.help_text else []
    if declared.default:
        notes.append(f"Blank: {declared.default}.")
    if declared.required:
        notes.append("Needed before sending (see the pre-launch checklist).")
    return forms.CharField(label=declared.label, required=False, strip=True, help_text=" ".join(notes))


class ProviderAccountForm(forms.ModelForm):
    """The fields every account has; `account_form` adds the declared ones."""

    api_base_url = forms.URLField(
        assume_scheme="https", required=False, label="API base URL",
        help_text="As the provider documents it. Blank: the provider's URL for this environment.",
    )
    auth_url = forms.URLField(
        assume_scheme="https", required=False, label="Token URL",
        help_text="GoGift and Giftronaut only. Blank: the provider's documented token URL.",
    )

    # Stored as {currency: "amount"} (ProviderAccount.monthly_limits); typed as text.
    monthly_limits = forms.CharField(
        label="Monthly spending limits", required=False, strip=True,
        help_text=(
            f"Per currency and calendar month, e.g. “{MONTHLY_LIMITS_EXAMPLE}”. Cards being sent, being "
            "fulfilled or delivered this month count; orders that would go over wait, saying why, until "
            "the limit is raised or the next month begins. Blank: no limit."
        ),
    )

    # Set by `account_form`: the kind's settings this form shows.
    setting_keys: tuple[str, ...] = ()

    class Meta:
        model = ProviderAccount
        fields = ["name", "kind", "environment", "api_base_url", "auth_url",
                  "max_cards_per_request", "rate_limit_per_minute", "monthly_limits", "is_active"]

    def __init__(self, *args, **kwargs) -> None:
        super().__init__(*args, **kwargs)
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

    def clean(self):
        cleaned = super().clean()
        kind = cleaned.get("kind") or self.instance.kind
        if kind:
            labels = credential_labels()
            unused = [
                labels[key] for key in labels
                if cleaned.get(credential_field_name(key)) and key not in credential_keys(kind)
            ]
            if unused:
                raise forms.ValidationError(
                    f"{', '.join(unused)} do not apply to {kind} accounts; "
                    f"{kind} uses {', '.join(labels[key] for key in sorted(credential_keys(kind)))}."
                )
        return cleaned

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


def account_form(kind: str | None) -> type[ProviderAccountForm]:
    """The account form with every kind's credential fields (the chosen kind's are checked
    in `clean`) and, when `kind` is known, that kind's setting fields. Built as a class
    because the admin's fieldsets may only name fields a form class declares."""
    fields: dict[str, forms.Field] = {
        credential_field_name(key): _credential_field(label) for key, label in credential_labels().items()
    }
    declared = client_class(kind).setting_fields if kind else {}
    fields |= {setting_field_name(key): _setting_field(setting) for key, setting in declared.items()}
    # type() takes the base's metaclass: Django's ModelFormMetaclass gathers the fields.
    return type("ProviderAccountForm", (ProviderAccountForm,),
                {**fields, "setting_keys": tuple(declared), "__module__": __name__})
