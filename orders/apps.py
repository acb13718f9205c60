from django.apps import AppConfig


class OrdersConfig(AppConfig):
    name = "orders"
    verbose_name = "Gift card orders"

    def ready(self) -> None:
        from orders import audit, checks  # noqa: F401  (checks register on import)

        audit.register()
