from django.apps import AppConfig


class TradingConfig(AppConfig):
    name = "trading"
    verbose_name = "MM orders and fills"
